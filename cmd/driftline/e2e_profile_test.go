//go:build integration

package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/testkit/redistest"
	"github.com/redis/go-redis/v9"
)

// sideProfile is DRIFTLINE_BENCH_PROFILE's accounting of one timed side:
// with DRIFTLINE_BENCH_PROFILE=dir set, each throughput run writes a CPU
// profile of this process (the measured side runs in it, alone while it
// is timed) to dir/<side>-<n>.prof, and logs the CPU time that this
// process, redis-server and the broker's JVM (this process's children;
// the load generator has exited before the timed runs) used during it,
// per input row, with Redis's command counts per row (INFO commandstats,
// reset before the side starts). DRIFTLINE_BENCH_SLOWLOG=1 adds each
// script's calls and time per row, from Redis's slow log (which it sets to
// log every command: it costs Redis CPU of its own); DRIFTLINE_BENCH_PERF=1
// records redis-server with perf (dir/<side>-<n>.redis.perf), and
// DRIFTLINE_BENCH_PERF=java the broker's JVM instead (<side>-<n>.broker.perf:
// its user-space CPU by library; the JIT's code has no symbols).
// DRIFTLINE_BENCH_JFR=1 records the broker's JVM with Java Flight Recorder
// (settings=profile, dir/<side>-<n>.jfr; `jfr print --events
// jdk.ExecutionSample` reads it), and every profiled side logs the
// broker's CPU per row by thread (/proc/<pid>/task, names without digits:
// request handlers and network threads both read "data-plane-kafk", the
// kernel's 15 characters). DRIFTLINE_BENCH_JMX=1 logs the broker's
// requests per 1,000 rows by type, with their mean size and the time
// they spent at a request handler (its RequestMetrics, read through JMX
// by testdata/BrokerRequests.java; the first read starts the broker's
// JMX agent).
type sideProfile struct {
	dir      string
	rdb      *redis.Client
	file     *os.File
	start    time.Time
	cpuStart map[string]time.Duration
	// perf records redis-server's or the broker's CPU (DRIFTLINE_BENCH_PERF).
	perf *exec.Cmd
	// jfr names the broker's flight recording (DRIFTLINE_BENCH_JFR=1).
	jfr string
	// broker is the broker's CPU by thread and its request counts at
	// the start.
	broker brokerSnapshot
}

// profileDir is DRIFTLINE_BENCH_PROFILE ("" when unset).
func profileDir() string { return os.Getenv("DRIFTLINE_BENCH_PROFILE") }

var profiledRuns int

// startSideProfile starts the accounting of side's timed run (nil when
// DRIFTLINE_BENCH_PROFILE is unset).
func startSideProfile(b *testing.B, rdb *redis.Client, side string) *sideProfile {
	dir := profileDir()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	profiledRuns++
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.prof", side, profiledRuns)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if os.Getenv("DRIFTLINE_BENCH_SLOWLOG") != "" {
		// Every top-level command in the slow log, to split the script
		// calls (one EVALSHA line in commandstats) by script.
		if err := rdb.ConfigSet(ctx, "slowlog-max-len", "1000000").Err(); err != nil {
			b.Fatal(err)
		}
		if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
			b.Fatal(err)
		}
		if err := rdb.Do(ctx, "SLOWLOG", "RESET").Err(); err != nil {
			b.Fatal(err)
		}
	}
	p := &sideProfile{dir: dir, rdb: rdb, file: f, start: time.Now(), cpuStart: familyCPU(), broker: takeBrokerSnapshot(b)}
	if os.Getenv("DRIFTLINE_BENCH_JFR") != "" {
		p.jfr = fmt.Sprintf("%s-%d", side, profiledRuns)
		jcmd(b, "JFR.start", "name="+p.jfr, "settings=profile", "filename="+filepath.Join(dir, p.jfr+".jfr"))
	}
	if v := os.Getenv("DRIFTLINE_BENCH_PERF"); v != "" {
		comm, suffix := "redis-server", "redis"
		if v == "java" {
			comm, suffix = "java", "broker"
		}
		p.perf = exec.Command("perf", "record", "-e", "cpu-clock:u", "-g", "-o",
			filepath.Join(dir, fmt.Sprintf("%s-%d.%s.perf", side, profiledRuns, suffix)), "-p", childPID(b, comm))
		if err := p.perf.Start(); err != nil {
			b.Fatal(err)
		}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return p
}

// stop ends the profile and logs side's CPU and Redis commands per row.
func (p *sideProfile) stop(b *testing.B, side string, rows int64) {
	if p == nil {
		return
	}
	pprof.StopCPUProfile()
	_ = p.file.Close()
	if p.perf != nil {
		_ = p.perf.Process.Signal(os.Interrupt)
		_ = p.perf.Wait()
	}
	wall := time.Since(p.start)
	end := familyCPU()
	broker := takeBrokerSnapshot(b)
	if p.jfr != "" {
		jcmd(b, "JFR.stop", "name="+p.jfr)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%s profile %s: %s wall;", side, p.file.Name(), wall.Round(time.Millisecond))
	for _, name := range slices.Sorted(maps.Keys(end)) {
		used := end[name] - p.cpuStart[name]
		fmt.Fprintf(&out, " %s %s CPU (%.2f µs/row, %.0f%% of a core)", name, used.Round(time.Millisecond),
			float64(used.Nanoseconds())/1e3/float64(rows), 100*used.Seconds()/wall.Seconds())
	}
	broker.logSince(&out, p.broker, rows)
	stats := redistest.CommandStats(b, p.rdb)
	out.WriteString("\n\tredis commands per row:")
	for _, name := range slices.Sorted(maps.Keys(stats)) {
		s := stats[name]
		fmt.Fprintf(&out, " %s %.4f (%.2f µs/row)", name, float64(s.Calls)/float64(rows), float64(s.Usec)/float64(rows))
	}
	if os.Getenv("DRIFTLINE_BENCH_SLOWLOG") != "" {
		p.logScripts(b, &out, rows)
	}
	b.Log(out.String())
}

// logScripts adds the slow log's script calls, by script (its SHA and
// its first key, digits dropped), to out, and turns the slow log off.
func (p *sideProfile) logScripts(b *testing.B, out *strings.Builder, rows int64) {
	ctx := context.Background()
	if err := p.rdb.ConfigSet(ctx, "slowlog-log-slower-than", "-1").Err(); err != nil {
		b.Fatal(err)
	}
	logs, err := p.rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		b.Fatal(err)
	}
	type tally struct {
		calls, args int64
		took        time.Duration
	}
	by := map[string]*tally{}
	for _, l := range logs {
		if len(l.Args) < 4 || !strings.HasPrefix(strings.ToLower(l.Args[0]), "eval") {
			continue
		}
		key := l.Args[1][:8] + " " + withoutDigits(l.Args[3])
		t := by[key]
		if t == nil {
			t = &tally{}
			by[key] = t
		}
		t.calls++
		t.took += l.Duration
		n, _ := strconv.ParseInt(l.Args[2], 10, 64)
		t.args += n
	}
	fmt.Fprintf(out, "\n\tscripts (slow log, %d entries):", len(logs))
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range by {
			if !yield(k) {
				return
			}
		}
	}) {
		t := by[key]
		fmt.Fprintf(out, "\n\t\t%s: %.4f calls/row, %.0f keys/call, %.2f µs/row, %.0f µs/call", key,
			float64(t.calls)/float64(rows), float64(t.args)/float64(t.calls),
			float64(t.took.Nanoseconds())/1e3/float64(rows), float64(t.took.Microseconds())/float64(t.calls))
	}
}

// familyCPU is the CPU time (user + system) of this process ("runner")
// and of each of its live children, by command name.
func familyCPU() map[string]time.Duration {
	self, _ := processCPU()
	out := map[string]time.Duration{"runner": self}
	for _, c := range children() {
		out[c.comm] += cpuOfStatFields(c.fields)
	}
	return out
}

// brokerSnapshot is the broker's CPU by thread (threadCPU) and, with
// DRIFTLINE_BENCH_JMX=1, its request metrics (nil without).
type brokerSnapshot struct {
	threads  map[string]time.Duration
	requests map[brokerMetric]brokerCount
}

func takeBrokerSnapshot(b *testing.B) brokerSnapshot {
	s := brokerSnapshot{threads: threadCPU(childPID(b, "java"))}
	if os.Getenv("DRIFTLINE_BENCH_JMX") != "" {
		s.requests = brokerRequests(b)
	}
	return s
}

// logSince adds to out the broker's CPU by thread and its requests from
// start to s, per row.
func (s brokerSnapshot) logSince(out *strings.Builder, start brokerSnapshot, rows int64) {
	out.WriteString("\n\tbroker threads, µs/row:")
	for _, name := range slices.Sorted(maps.Keys(s.threads)) {
		if used := s.threads[name] - start.threads[name]; used > 0 {
			fmt.Fprintf(out, " %q %.2f", name, float64(used.Nanoseconds())/1e3/float64(rows))
		}
	}
	if s.requests != nil && start.requests != nil {
		logBrokerRequests(out, start.requests, s.requests, rows)
	}
}

// brokerMetric is one of the broker's request metrics: request is the
// request type, metric RequestsPerSec, RequestBytes, LocalTimeMs or
// TotalTimeMs.
type brokerMetric struct{ request, metric string }

// brokerCount is a request metric's count and, for a histogram, its sum.
type brokerCount struct {
	count int64
	sum   float64
}

// brokerRequests reads the broker's request metrics, summed over the
// request versions (testdata/BrokerRequests.java).
func brokerRequests(b *testing.B) map[brokerMetric]brokerCount {
	out, err := exec.Command("java", "testdata/BrokerRequests.java", childPID(b, "java")).CombinedOutput()
	if err != nil {
		b.Fatalf("broker request metrics: %v: %s", err, out)
	}
	m := map[brokerMetric]brokerCount{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			b.Fatalf("broker request metrics: unexpected line %q", line)
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		sum, _ := strconv.ParseFloat(f[3], 64)
		k := brokerMetric{request: strings.Split(f[0], "/")[0], metric: f[1]}
		c := m[k]
		m[k] = brokerCount{count: c.count + n, sum: c.sum + sum}
	}
	return m
}

// logBrokerRequests adds to out, per request type the broker served
// between from and to: requests per 1,000 rows, mean request bytes, and
// mean handler (local) time in ms.
func logBrokerRequests(out *strings.Builder, from, to map[brokerMetric]brokerCount, rows int64) {
	out.WriteString("\n\tbroker requests per 1000 rows (mean bytes, mean handler ms, handler µs/row):")
	for _, k := range slices.SortedFunc(maps.Keys(to), func(a, b brokerMetric) int { return strings.Compare(a.request, b.request) }) {
		if k.metric != "RequestsPerSec" {
			continue
		}
		n := to[k].count - from[k].count
		if n == 0 {
			continue
		}
		diff := func(metric string) (int64, float64) {
			mk := brokerMetric{k.request, metric}
			return to[mk].count - from[mk].count, to[mk].sum - from[mk].sum
		}
		bn, bsum := diff("RequestBytes")
		ln, lsum := diff("LocalTimeMs")
		fmt.Fprintf(out, " %s %.2f (%.0f B, %.2f ms, %.2f)", k.request, 1000*float64(n)/float64(rows),
			bsum/float64(max(bn, 1)), lsum/float64(max(ln, 1)), lsum*1e3/float64(rows))
	}
}

// jcmd runs jcmd on the broker's JVM (this process's child "java").
func jcmd(b *testing.B, args ...string) {
	out, err := exec.Command("jcmd", append([]string{childPID(b, "java")}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("jcmd %v: %v: %s", args, err, out)
	}
}

// threadCPU is the CPU time of process pid's threads, summed by thread
// name with its digits dropped ("GC Thread#0" and "GC Thread#1" are "GC
// Thread#"), and, under "<name> (sys)", the part of it in the kernel.
func threadCPU(pid string) map[string]time.Duration {
	paths, _ := filepath.Glob("/proc/" + pid + "/task/[0-9]*/stat")
	out := map[string]time.Duration{}
	for _, path := range paths {
		if st, ok := readStat(path); ok {
			name := withoutDigits(st.comm)
			out[name] += cpuOfStatFields(st.fields)
			out[name+" (sys)"] += statTicks(st.fields[12])
		}
	}
	return out
}

// withoutDigits is s with its decimal digits dropped.
func withoutDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, s)
}

// childPID is the process id of this process's child named comm.
func childPID(b *testing.B, comm string) string {
	for _, c := range children() {
		if c.comm == comm {
			return c.pid
		}
	}
	b.Fatalf("no child process %s", comm)
	return ""
}

// child is a live process or thread, from its /proc/<pid>/stat: its
// pid, its command name and the fields after the name (at least 13).
type child struct {
	pid, comm string
	fields    []string
}

// readStat reads the stat file at path; ok is false when it is gone or
// not as expected.
func readStat(path string) (c child, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return c, false
	}
	line := string(data)
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return c, false
	}
	fields := strings.Fields(line[end+1:])
	if len(fields) < 13 {
		return c, false
	}
	return child{pid: strings.TrimSpace(line[:open]), comm: line[open+1 : end], fields: fields}, true
}

// children lists this process's live children.
func children() []child {
	ppid := strconv.Itoa(os.Getpid())
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []child
	for _, path := range paths {
		if c, ok := readStat(path); ok && c.fields[1] == ppid {
			out = append(out, c)
		}
	}
	return out
}

// cpuOfStatFields is utime + stime from the fields after a stat line's
// command name (state is fields[0], utime fields[11], stime fields[12]),
// in clock ticks of 10 ms (USER_HZ 100 on Linux).
func cpuOfStatFields(fields []string) time.Duration {
	return statTicks(fields[11]) + statTicks(fields[12])
}

// statTicks is a /proc stat field of clock ticks as a duration.
func statTicks(field string) time.Duration {
	n, _ := strconv.ParseInt(field, 10, 64)
	return time.Duration(n) * 10 * time.Millisecond
}

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
// records redis-server with perf (dir/<side>-<n>.redis.perf).
type sideProfile struct {
	dir      string
	rdb      *redis.Client
	file     *os.File
	start    time.Time
	cpuStart map[string]time.Duration
	// perf records redis-server's CPU (DRIFTLINE_BENCH_PERF=1).
	perf *exec.Cmd
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
	p := &sideProfile{dir: dir, rdb: rdb, file: f, start: time.Now(), cpuStart: familyCPU()}
	if os.Getenv("DRIFTLINE_BENCH_PERF") != "" {
		p.perf = exec.Command("perf", "record", "-e", "cpu-clock:u", "-g", "-o",
			filepath.Join(dir, fmt.Sprintf("%s-%d.redis.perf", side, profiledRuns)), "-p", childPID(b, "redis-server"))
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
	var out strings.Builder
	fmt.Fprintf(&out, "%s profile %s: %s wall;", side, p.file.Name(), wall.Round(time.Millisecond))
	for _, name := range slices.Sorted(maps.Keys(end)) {
		used := end[name] - p.cpuStart[name]
		fmt.Fprintf(&out, " %s %s CPU (%.2f µs/row, %.0f%% of a core)", name, used.Round(time.Millisecond),
			float64(used.Nanoseconds())/1e3/float64(rows), 100*used.Seconds()/wall.Seconds())
	}
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
		key := l.Args[1][:8] + " " + strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, l.Args[3])
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

// child is a live child process of this one, from its /proc/<pid>/stat:
// its pid, its command name and the fields after the name.
type child struct {
	pid, comm string
	fields    []string
}

// children lists this process's live children.
func children() []child {
	ppid := strconv.Itoa(os.Getpid())
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []child
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		line := string(data)
		open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) < 13 || fields[1] != ppid {
			continue
		}
		out = append(out, child{pid: strings.TrimSpace(line[:open]), comm: line[open+1 : end], fields: fields})
	}
	return out
}

// cpuOfStatFields is utime + stime from the fields after a stat line's
// command name (state is fields[0], utime fields[11], stime fields[12]),
// in clock ticks of 10 ms (USER_HZ 100 on Linux).
func cpuOfStatFields(fields []string) time.Duration {
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

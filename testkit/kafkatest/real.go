package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/testkit/internal/proc"
)

const (
	// startTimeout bounds the wait for a real broker to answer metadata requests. A JVM
	// on a busy 2-core machine takes several seconds; this leaves a wide margin.
	startTimeout = 2 * time.Minute
	// stopTimeout is how long a broker gets to shut down after SIGTERM before SIGKILL.
	stopTimeout = 20 * time.Second
	// startAttempts is how often StartKafka retries when a chosen port was taken
	// between picking it and the broker binding it.
	startAttempts = 3
	setupHint     = "run scripts/setup-kafka.sh (or set DRIFTLINE_KAFKA_LIBS to a folder of Kafka jars)"
)

var errPortTaken = errors.New("port taken")

// LibsDir returns the folder of Apache Kafka jars: $DRIFTLINE_KAFKA_LIBS when set, else
// the folder recorded by scripts/setup-kafka.sh in
// ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/kafka/current. The error says which
// script to run when neither holds the Kafka jars.
func LibsDir() (string, error) {
	dir := os.Getenv("DRIFTLINE_KAFKA_LIBS")
	if dir == "" {
		cache := os.Getenv("DRIFTLINE_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locate kafka jars: %w; %s", err, setupHint)
			}
			cache = filepath.Join(home, ".cache", "driftline")
		}
		cur, err := os.ReadFile(filepath.Join(cache, "kafka", "current"))
		if err != nil {
			return "", fmt.Errorf("kafka jars not set up: %w; %s", err, setupHint)
		}
		dir = strings.TrimSpace(string(cur))
	}
	jars, _ := filepath.Glob(filepath.Join(dir, "kafka_2.13-*.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("no kafka_2.13 jar in %s; %s", dir, setupHint)
	}
	return dir, nil
}

// StartKafka starts one real Apache Kafka broker in KRaft combined mode
// (process.roles=broker,controller) on free loopback ports, and stops it at tb.Cleanup:
// SIGTERM, then SIGKILL after 20 s. It formats the storage in a fresh temporary folder,
// waits until the broker answers metadata requests, and returns. If the start fails, the
// test fails with the tail of the broker log.
//
// The broker is tuned for tests: replication factor 1 for internal topics,
// group.initial.rebalance.delay.ms=0, auto.create.topics.enable=false, and a 512 MiB
// heap. Create topics with CreateTopic.
//
// It needs java on PATH (or in $JAVA_HOME/bin) and the jars located by LibsDir; without
// them it fails the test and names scripts/setup-kafka.sh.
func StartKafka(tb testing.TB) *Broker {
	tb.Helper()
	return startReal(tb, nil)
}

// StartSASLSSL starts a broker like StartKafka's whose only client listener is
// SASL_SSL: TLS with a certificate signed by a CA made for it, and SASL with the
// SCRAM-SHA-512 and SCRAM-SHA-256 users of opts created at format time (see
// SASLSSL). Broker.SASLSSL holds what a client needs; Broker.Client and CreateTopic
// connect as the broker's own user. A package whose tests share one broker uses
// SharedSASLSSL instead.
func StartSASLSSL(tb testing.TB, opts SASLSSLOptions) *Broker {
	tb.Helper()
	return startReal(tb, &opts)
}

// StartKafkaWithController starts a plaintext broker like StartKafka's
// whose KRaft controller runs in a JVM of its own, as in a production
// cluster: Kill, Stop and Start restart the broker alone, and the
// controller fences it while it is down. Restart tests use it. A combined
// node's restart has a window where the restarted process serves its
// transaction coordinator while its controller still refuses its
// registration (DUPLICATE_BROKER_REGISTRATION, until the old one's
// broker.session.timeout.ms); the fence that ends it leaves every
// partition without a leader, and Kafka 4.4.0 drops the transaction
// markers it was sending to them (RELIABILITY.md, "Known issue").
func StartKafkaWithController(tb testing.TB) *Broker {
	tb.Helper()
	return startRealAs(tb, nil, true)
}

func startReal(tb testing.TB, sec *SASLSSLOptions) *Broker {
	tb.Helper()
	return startRealAs(tb, sec, false)
}

func startRealAs(tb testing.TB, sec *SASLSSLOptions, ownController bool) *Broker {
	tb.Helper()
	b, err := launch(sec, ownController, tb.Logf)
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.stop(); err != nil {
			tb.Errorf("kafkatest: %v", err)
		}
	})
	return b
}

// launch starts a real broker (a SASL_SSL one when sec is set; with its
// controller in a JVM of its own when ownController is), retrying when a
// chosen port was taken. The caller stops it with Broker.stop; on error nothing is
// left running. logf receives notes (retries, a SIGKILL needed).
func launch(sec *SASLSSLOptions, ownController bool, logf func(format string, args ...any)) (*Broker, error) {
	libs, err := LibsDir()
	if err != nil {
		return nil, err
	}
	java, err := javaPath()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		b, err := launchOnce(java, libs, sec, ownController, logf)
		if err == nil {
			return b, nil
		}
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			logf("kafkatest: retrying broker start: %v", err)
			continue
		}
		return nil, err
	}
}

func javaPath() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java (17 or later) not found: %w; install it (Debian: apt-get install -y openjdk-17-jre-headless), then %s", err, setupHint)
	}
	return p, nil
}

// undoList runs the undo steps of a start, last first.
type undoList []func() error

func (u undoList) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		errs = append(errs, u[i]())
	}
	return errors.Join(errs...)
}

// launchOnce makes one start attempt. On error it stops what it started.
func launchOnce(java, libs string, secOpts *SASLSSLOptions, ownController bool, logf func(format string, args ...any)) (b *Broker, err error) {
	var undo undoList
	defer func() {
		if err != nil {
			if uerr := undo.run(); uerr != nil {
				logf("kafkatest: clean up a failed start: %v", uerr)
			}
		}
	}()
	dir, err := os.MkdirTemp("", "driftline-kafka-")
	if err != nil {
		return nil, fmt.Errorf("broker folder: %w", err)
	}
	undo = append(undo, func() error { return os.RemoveAll(dir) })
	if secOpts != nil && ownController {
		return nil, errors.New("a SASL_SSL broker with a controller of its own is not supported")
	}
	var sec *SASLSSL
	if secOpts != nil {
		if sec, err = newSASLSSL(dir, *secOpts); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	ctrl := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	// A node's JVM arguments follow its heap size (-Xms, -Xmx).
	jvm := []string{
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(libs, "log4j2.yaml"),
		"-cp", filepath.Join(libs, "*"),
	}
	cluster := clusterID()
	// node formats a node's storage and starts its JVM, logging to
	// <name>.log in dir.
	node := func(name string, role nodeRole, heap string) (*brokerProcess, error) {
		props := filepath.Join(dir, name+".properties")
		if err := os.WriteFile(props, []byte(serverProperties(role, addr, ctrl, filepath.Join(dir, name+"-data"), sec)), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", props, err)
		}
		logPath := filepath.Join(dir, name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			return nil, fmt.Errorf("%s log: %w", name, err)
		}
		defer logFile.Close()
		nodeJVM := append([]string{"-Xms" + heap, "-Xmx" + heap}, jvm...)
		formatArgs := []string{"kafka.tools.StorageTool", "format", "--cluster-id", cluster, "--config", props}
		if sec != nil {
			formatArgs = append(formatArgs, sec.formatArgs()...)
		}
		format := exec.Command(java, append(nodeJVM, formatArgs...)...)
		format.Dir, format.Stdout, format.Stderr = dir, logFile, logFile
		if err := format.Run(); err != nil {
			return nil, fmt.Errorf("format %s's kraft storage: %w\n%s", name, err, tail(logPath))
		}
		p := &brokerProcess{java: java, dir: dir, logPath: logPath, args: append(nodeJVM, "kafka.Kafka", props), logf: logf}
		if err := p.spawn(); err != nil {
			return nil, err
		}
		undo = append(undo, p.stop)
		return p, nil
	}
	role := combinedNode
	if ownController {
		role = brokerNode
		if _, err := node("controller", controllerNode, "256m"); err != nil {
			return nil, err
		}
	}
	bp, err := node("broker", role, "512m")
	if err != nil {
		return nil, err
	}
	logPath := bp.logPath

	var clientOpts []kgo.Opt
	if sec != nil {
		if clientOpts, err = sec.clientOpts(); err != nil {
			return nil, err
		}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, clientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("new admin client: %w", err)
	}
	undo = append(undo, func() error { cl.Close(); return nil })
	adm := kadm.NewClient(cl)
	if err := waitReady(adm, bp.exited); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %w", err, bp.waitErr)
			if bytes.Contains(readFile(logPath), []byte("Address already in use")) {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
		}
		return nil, fmt.Errorf("broker at %s not ready: %w\nbroker log %s:\n%s", addr, err, logPath, tail(logPath))
	}
	return &Broker{Addr: addr, LogPath: logPath, SASLSSL: sec, admin: adm, clientOpts: clientOpts, stop: sync.OnceValue(undo.run), proc: bp}, nil
}

// brokerProcess is a real broker's JVM: how to start it, and its process
// now. Its methods are used by one goroutine at a time.
type brokerProcess struct {
	java, dir, logPath string
	args               []string
	logf               func(format string, args ...any)
	proc               *os.Process
	exited             chan struct{}
	waitErr            error // the process's exit, once exited is closed
}

// spawn starts the JVM, its output appended to the broker log.
func (p *brokerProcess) spawn() error {
	logFile, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("broker log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(p.java, p.args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = p.dir, logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	exited := make(chan struct{})
	go func() { p.waitErr = cmd.Wait(); close(exited) }()
	p.proc, p.exited = cmd.Process, exited
	return nil
}

// stop stops the JVM (SIGTERM, then SIGKILL after stopTimeout); stopping a
// stopped broker is a no-op.
func (p *brokerProcess) stop() error {
	return proc.Stop(p.logf, "kafkatest: broker", p.proc, p.exited, stopTimeout)
}

// Stop stops a real broker now (a clean shutdown: SIGTERM, then SIGKILL
// after 20 s), keeping its ports, configuration and data for Start. The
// test's cleanup stops it for good either way.
func (b *Broker) Stop(tb testing.TB) {
	tb.Helper()
	if b.proc == nil {
		tb.Fatalf("kafkatest: Stop applies to a real broker only")
	}
	if err := b.proc.stop(); err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
}

// Kill kills a real broker's process now (SIGKILL, a crash: nothing is
// flushed or handed over), keeping its ports, configuration and data for
// Start.
func (b *Broker) Kill(tb testing.TB) {
	tb.Helper()
	if b.proc == nil {
		tb.Fatalf("kafkatest: Kill applies to a real broker only")
	}
	select {
	case <-b.proc.exited:
		return
	default:
	}
	if err := b.proc.proc.Kill(); err != nil {
		tb.Fatalf("kafkatest: kill the broker: %v", err)
	}
	<-b.proc.exited
}

// Start starts a broker that Stop or Kill stopped again, on the same ports with the
// same data folder (its topics, offsets and transactions), and returns once
// it answers metadata requests.
func (b *Broker) Start(tb testing.TB) {
	tb.Helper()
	if b.proc == nil {
		tb.Fatalf("kafkatest: Start applies to a real broker only")
	}
	select {
	case <-b.proc.exited:
	default:
		tb.Fatalf("kafkatest: Start: the broker at %s is running; Stop it first", b.Addr)
	}
	if err := b.proc.spawn(); err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	// A fresh client: b.admin's client answers metadata from its cache.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, b.clientOpts...)...)
	if err != nil {
		tb.Fatalf("kafkatest: new admin client: %v", err)
	}
	defer cl.Close()
	if err := waitReady(kadm.NewClient(cl), b.proc.exited); err != nil {
		tb.Fatalf("kafkatest: broker at %s not ready after a restart: %v\nbroker log %s:\n%s", b.Addr, err, b.LogPath, tail(b.LogPath))
	}
}

var errExited = errors.New("broker process exited")

// waitReady polls the broker's metadata until it lists a broker, the process exits, or
// startTimeout passes.
func waitReady(adm *kadm.Client, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		md, err := adm.BrokerMetadata(rctx)
		rcancel()
		if err == nil && len(md.Brokers) > 0 && md.Controller >= 0 {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("no answer within %s: %w", startTimeout, errors.Join(ctx.Err(), last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// nodeRole is which KRaft roles a JVM of a test cluster takes.
type nodeRole int

const (
	combinedNode   nodeRole = iota // broker and controller in one process, node 1
	brokerNode                     // broker only, node 1; its controller is node 2
	controllerNode                 // controller only, node 2
)

// serverProperties is a node's configuration: for a broker, a PLAINTEXT client
// listener at addr, or a SASL_SSL one when sec is set; the controller listener
// at ctrl, on the node that is the controller.
func serverProperties(role nodeRole, addr, ctrl, dataDir string, sec *SASLSSL) string {
	var head []string
	switch role {
	case combinedNode:
		head = []string{"process.roles=broker,controller", "node.id=1", "controller.quorum.voters=1@" + ctrl}
		if sec != nil {
			head = append(head, sec.properties(addr, ctrl)...)
		} else {
			head = append(head, "listeners=PLAINTEXT://"+addr+",CONTROLLER://"+ctrl, "advertised.listeners=PLAINTEXT://"+addr,
				"inter.broker.listener.name=PLAINTEXT", "controller.listener.names=CONTROLLER",
				"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
		}
	case brokerNode:
		head = []string{"process.roles=broker", "node.id=1", "controller.quorum.voters=2@" + ctrl,
			"listeners=PLAINTEXT://" + addr, "advertised.listeners=PLAINTEXT://" + addr,
			"inter.broker.listener.name=PLAINTEXT", "controller.listener.names=CONTROLLER",
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}
	case controllerNode:
		head = []string{"process.roles=controller", "node.id=2", "controller.quorum.voters=2@" + ctrl,
			"listeners=CONTROLLER://" + ctrl, "controller.listener.names=CONTROLLER",
			"listener.security.protocol.map=CONTROLLER:PLAINTEXT"}
	}
	return strings.Join(append(head,
		"log.dirs="+dataDir,
		"num.partitions=1",
		"auto.create.topics.enable=false",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=4",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=4",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		"group.min.session.timeout.ms=500",
		"group.consumer.min.session.timeout.ms=1000",
		"num.network.threads=2",
		"num.io.threads=4",
		"",
	), "\n")
}

// clusterID returns a random KRaft cluster id: 16 bytes, base64url without padding.
func clusterID() string {
	var b [16]byte
	rand.Read(b[:])
	// A nonzero first byte below 0x80 keeps the id clear of Kafka's reserved ids (zero
	// and one) and makes its text start with a letter, never a '-' the CLI reads as a flag.
	b[0] = b[0]&0x7f | 0x01
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// freePorts reserves n distinct loopback ports by listening on port 0, then releases
// them for the broker. Another process can take one in between; StartKafka retries then.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// tail returns the last 40 lines of the file at path.
func tail(path string) string {
	lines := strings.Split(strings.TrimRight(string(readFile(path)), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

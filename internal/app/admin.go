package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/models/adminapi"
)

// AdminLimits bound what one client of the admin address can hold: each
// slow or idle connection is closed within its timeout, and at most
// MaxConns are open at once (more wait to be accepted), so idle or
// slow-loris clients cannot pile up or starve the others for longer than
// ReadHeaderTimeout.
type AdminLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers, and how long a
	// new connection may stay silent; ReadTimeout the whole request with
	// its body; WriteTimeout the time from the end of the headers to the
	// end of the answer; IdleTimeout how long a kept-alive connection
	// waits for its next request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once.
	MaxConns int
}

// DefaultAdminLimits are the admin server's limits.
var DefaultAdminLimits = AdminLimits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       15 * time.Second,
	MaxHeaderBytes:    16 << 10,
	MaxConns:          128,
}

// ServeAdmin serves the admin address until ctx ends: /metrics (behind a
// viewer token of the admin API with admin.metrics_auth), /healthz,
// /readyz and, when the App has a model registry, the model admin API
// under /api/v1 (bearer tokens; Options.AdminToken is the bootstrap admin
// token), and the status page at / (admin.public_status: read without a
// token). An address without a host (":9464") listens on loopback only;
// name the interface to listen on more ("0.0.0.0:9464", a pod IP). The
// server bounds slow and idle clients (DefaultAdminLimits). It returns the
// address it listens on; errors name admin.addr.
func (a *App) ServeAdmin(ctx context.Context, addr string) (string, error) {
	return a.serveAdmin(ctx, addr, DefaultAdminLimits)
}

func (a *App) serveAdmin(ctx context.Context, addr string, limits AdminLimits) (string, error) {
	mux := http.NewServeMux()
	var metrics http.Handler = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})
	if a.models != nil {
		api, err := adminapi.New(adminapi.Config{Registry: a.models, Redis: a.rdb, BootstrapToken: a.adminToken,
			Status: statusSource{a}, PublicStatus: a.spec.Admin.PublicStatus, Log: a.log, Unavailable: redisUnavailable})
		if err != nil {
			return "", err
		}
		mux.Handle("/api/v1/", api)
		mux.Handle("/", adminapi.StatusPage()) // the status page (status.go)
		go a.runStatus(ctx)
		if a.spec.Admin.MetricsAuth {
			metrics = api.Protect(adminapi.RoleViewer, metrics)
		}
	} else if a.spec.Admin.MetricsAuth {
		return "", errors.New("admin.metrics_auth: /metrics is guarded by the admin API's viewer tokens, and this pipeline has no admin API (set admin.addr in the spec)")
	}
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := a.NotReady(); len(why) > 0 {
			http.Error(w, "not ready: "+strings.Join(why, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", loopbackByDefault(addr))
	if err != nil {
		return "", fmt.Errorf("admin.addr: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: limits.ReadHeaderTimeout, ReadTimeout: limits.ReadTimeout,
		WriteTimeout: limits.WriteTimeout, IdleTimeout: limits.IdleTimeout, MaxHeaderBytes: limits.MaxHeaderBytes}
	go func() {
		if err := srv.Serve(netutil.LimitListener(ln, limits.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	return ln.Addr().String(), nil
}

// loopbackByDefault puts 127.0.0.1 in an address without a host
// (":9464"), which net.Listen would bind on every interface.
func loopbackByDefault(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// redisUnavailable tells the admin API which failures mean Redis is down
// (503) rather than a fault of the server (500).
func redisUnavailable(err error) bool {
	_, ok := redis.Unavailable(err)
	return ok
}

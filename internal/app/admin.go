package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/driftline/driftline/models/adminapi"
)

// ServeAdmin serves the admin address until ctx ends: /metrics, /healthz,
// /readyz and, when the App has a model registry, the model admin API
// under /api/v1 (bearer tokens; Options.AdminToken is the bootstrap admin
// token) and the status page at / (admin.public_status: read without a
// token). It returns the address it listens on; errors name admin.addr.
func (a *App) ServeAdmin(ctx context.Context, addr string) (string, error) {
	mux := http.NewServeMux()
	if a.models != nil {
		api, err := adminapi.New(adminapi.Config{Registry: a.models, Redis: a.rdb, BootstrapToken: a.adminToken,
			Status: statusSource{a}, PublicStatus: a.spec.Admin.PublicStatus})
		if err != nil {
			return "", err
		}
		mux.Handle("/api/v1/", api)
		mux.Handle("/", adminapi.StatusPage()) // the status page (status.go)
		go a.runStatus(ctx)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready: no partition assignment yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin.addr: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

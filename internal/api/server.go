// Package api is keyplane's REST API: it decodes and validates HTTP requests, authenticates callers,
// calls the service, and writes the contract's envelope. It holds no business rule of its own.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/verify"
)

// Options configure a Server.
type Options struct {
	Service  *service.Service
	Verifier *verify.Verifier
	Logger   *slog.Logger
	// TrustedProxies are peers whose X-Forwarded-For / X-Real-IP are believed.
	TrustedProxies []netip.Prefix
	Version        string
	Started        time.Time
}

// Server serves the REST API.
type Server struct {
	svc     *service.Service
	ver     *verify.Verifier
	log     *slog.Logger
	proxies []netip.Prefix
	version string
	started time.Time
	mux     *http.ServeMux
}

// New returns a Server with its routes.
func New(o Options) *Server {
	s := &Server{svc: o.Service, ver: o.Verifier, log: o.Logger, proxies: o.TrustedProxies, version: o.Version, started: o.Started, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /v1/status", s.status)
	m.HandleFunc("GET /v1/openapi.json", s.openapi)

	m.HandleFunc("GET /v1/permissions", s.auth(anyCaller, s.listPermissions))
	m.HandleFunc("GET /v1/event-types", s.auth(anyCaller, s.listEventTypes))

	m.HandleFunc("GET /v1/workspaces", s.auth(anyCaller, s.listWorkspaces))
	m.HandleFunc("POST /v1/workspaces", s.auth(anyCaller, s.createWorkspace))
	m.HandleFunc("GET /v1/workspaces/{id}", s.auth(anyCaller, s.getWorkspace))
	m.HandleFunc("PATCH /v1/workspaces/{id}", s.auth(anyCaller, s.updateWorkspace))
	m.HandleFunc("GET /v1/workspaces/{id}/members", s.auth(anyCaller, s.listMembers))
	m.HandleFunc("POST /v1/workspaces/{id}/members", s.auth(anyCaller, s.addMember))

	m.HandleFunc("GET /v1/api-keys", s.auth(inWorkspace, s.listKeys))
	m.HandleFunc("POST /v1/api-keys", s.auth(inWorkspace, s.createKey))
	m.HandleFunc("GET /v1/api-keys/publishable", s.auth(inWorkspace, s.publishableKey))
	m.HandleFunc("GET /v1/api-keys/{id}", s.auth(inWorkspace, s.getKey))
	m.HandleFunc("PATCH /v1/api-keys/{id}", s.auth(inWorkspace, s.updateKey))
	m.HandleFunc("DELETE /v1/api-keys/{id}", s.auth(inWorkspace, s.deleteKey))
	m.HandleFunc("POST /v1/api-keys/{id}/rotate", s.auth(inWorkspace, s.rotateKey))
	m.HandleFunc("POST /v1/api-keys/{id}/reveal", s.auth(inWorkspace, s.revealKey))

	m.HandleFunc("GET /v1/audit-logs", s.auth(inWorkspace, s.listAudit))
	m.HandleFunc("GET /v1/audit-logs/verify", s.auth(inWorkspace, s.verifyAudit))

	m.HandleFunc("POST /v1/verify", s.auth(verifier, s.verifyKey))
}

// ServeHTTP runs every request through the request id, recovery and access log, and answers
// unknown routes and methods in the contract's envelope.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get("X-Request-Id")
	if !saneRequestID(rid) {
		rid = id.New(id.Request)
	}
	ctx := context.WithValue(r.Context(), ridKey{}, rid)
	r = r.WithContext(ctx)
	w.Header().Set("X-Request-Id", rid)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(ctx, "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", rid)
			if !sw.wrote {
				s.writeError(sw, r, fmt.Errorf("panic: %v", v))
			}
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "http request", slog.String("request_id", rid), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
	}()
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.unrouted(sw, r, h)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// unrouted distinguishes "no such route" from "no such method on this route" by asking the mux's own
// answer, then says it in the envelope.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.Header().Get("Allow"))
		s.writeError(w, r, keyplane.Errorf(keyplane.CodeMethodNotAllowed, "%s is not allowed here; allowed: %s", r.Method, rec.Header().Get("Allow")))
		return
	}
	s.writeError(w, r, keyplane.Errorf(keyplane.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type ridKey struct{}

func requestID(ctx context.Context) string {
	s, _ := ctx.Value(ridKey{}).(string)
	return s
}

// saneRequestID accepts a caller's request id only if it cannot corrupt a log line or a header.
func saneRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// clientIP is the peer's address, or the one a trusted proxy says it forwarded for.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer
	}
	// The rightmost untrusted address of X-Forwarded-For is the one the nearest trusted proxy saw.
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		parts := strings.Split(strings.Join(xff, ","), ",")
		for i := len(parts) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
			if err != nil {
				break
			}
			a = a.Unmap()
			if !s.trusted(a) || i == 0 {
				return a
			}
		}
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
		return a.Unmap()
	}
	return peer
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Store().Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: store unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type statusView struct {
	Status        string `json:"status"`
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptimeSeconds"`
	Store         struct {
		Driver string `json:"driver"`
		OK     bool   `json:"ok"`
	} `json:"store"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var v statusView
	v.Version, v.UptimeSeconds = s.version, int64(time.Since(s.started).Seconds())
	v.Store.Driver = s.svc.Store().Driver()
	v.Store.OK = s.svc.Store().Ping(ctx) == nil
	v.Status = "ok"
	if !v.Store.OK {
		v.Status = "degraded"
	}
	writeData(w, http.StatusOK, v)
}

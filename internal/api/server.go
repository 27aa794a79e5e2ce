// Package api is keyplane's REST API: it decodes and validates HTTP requests, authenticates callers,
// calls the service, and writes the contract's envelope. It holds no business rule of its own.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/accesslog"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/routemux"
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
	// RequestLog takes an entry for every verification of a key that exists and every management
	// request made with a workspace key; nil logs nothing.
	RequestLog RequestLogger
	// Observe records each verification's outcome and latency (metrics); nil records nothing.
	Observe func(code, source string, d time.Duration)
	// Limiter rate limits the management API per credential and per client address (verification
	// calls are limited by their keys' own limits only); nil: an in-process limiter.
	Limiter ratelimit.Limiter
	// CredentialLimit and AddressLimit are those limits; zero: DefaultCredentialLimit,
	// DefaultAddressLimit.
	CredentialLimit ratelimit.Limit
	AddressLimit    ratelimit.Limit
	// GitHubScanningKeys are GitHub's secret scanning public keys (--github-scanning-keys); nil: the
	// partner endpoint, POST /v1/secret-scanning/github, answers 404.
	GitHubScanningKeys GitHubKeys
}

// GitHubKeys checks that a signature of GitHub's signs a body (secretscan.File, secretscan.Keys): an
// error for a missing or bad signature, an unknown key identifier or a changed body.
type GitHubKeys interface {
	Verify(keyID, signature string, body []byte) error
}

// Management API rate limits: generous for automation, tight enough to stop a runaway script or a
// credential-guessing client from loading the store.
var (
	DefaultCredentialLimit = ratelimit.Limit{Limit: 1000, Window: 10 * time.Second}
	DefaultAddressLimit    = ratelimit.Limit{Limit: 2000, Window: 10 * time.Second}
)

// RequestLogger takes request log entries and returns at once, whatever happens to them:
// reqlog.Logger is one.
type RequestLogger interface {
	Log(e keyplane.RequestLog)
}

// noLog is the RequestLogger of a server without a request log.
type noLog struct{}

func (noLog) Log(keyplane.RequestLog) {}

// Server serves the REST API.
type Server struct {
	svc     *service.Service
	ver     *verify.Verifier
	log     *slog.Logger
	reqlog  RequestLogger
	observe func(code, source string, d time.Duration)
	proxies []netip.Prefix
	version string
	started time.Time
	mux     *routemux.Mux
	limiter ratelimit.Limiter
	credLim ratelimit.Limit
	addrLim ratelimit.Limit
	ghKeys  GitHubKeys
}

// New returns a Server with its routes.
func New(o Options) *Server {
	s := &Server{svc: o.Service, ver: o.Verifier, log: o.Logger, reqlog: o.RequestLog, proxies: o.TrustedProxies, version: o.Version, started: o.Started, mux: routemux.New()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reqlog == nil {
		s.reqlog = noLog{}
	}
	s.limiter, s.credLim, s.addrLim = o.Limiter, o.CredentialLimit, o.AddressLimit
	if s.limiter == nil {
		s.limiter = ratelimit.NewLocal(nil)
	}
	if s.credLim.Limit == 0 {
		s.credLim = DefaultCredentialLimit
	}
	if s.addrLim.Limit == 0 {
		s.addrLim = DefaultAddressLimit
	}
	s.ghKeys = o.GitHubScanningKeys
	s.observe = o.Observe
	if s.observe == nil {
		s.observe = func(string, string, time.Duration) {}
	}
	s.routes()
	return s
}

// ServeHTTP answers API requests, unknown routes and methods included, in the contract's envelope.
// Request ids, access logs and panic recovery come from accesslog, around the whole server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.unrouted(w, r, h)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Lean sends the verification routes, POST /v1/verify and forward auth (/v1/auth…), straight to
// their handlers, and every other request to rest. Verifications are the node's hot path, tens of
// thousands a second, and are counted by the verification metrics (Options.Observe) already: they
// skip what rest puts around the others (serve's generic HTTP metrics, the dashboard's and the API's
// routing). What every request needs, request ids, access logs, panic recovery and HSTS, stays
// around Lean.
func (s *Server) Lean(rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v1/verify" && r.Method == http.MethodPost:
			s.verifyRoute(w, r)
		case (p == "/v1/auth" || strings.HasPrefix(p, "/v1/auth/") && clean(p)) && r.Method != http.MethodConnect:
			// A path ServeMux would clean (and redirect to), or CONNECT, which it routes by host,
			// is left to it, so that the answer is the same either way.
			s.forwardAuth(w, r)
		default:
			rest.ServeHTTP(w, r)
		}
	})
}

// clean reports whether ServeMux would serve p as it is, without redirecting to a cleaner path: p is
// what path.Clean makes of it, but for a trailing slash, which ServeMux keeps.
func clean(p string) bool {
	c := path.Clean(p)
	return c == p || len(p) == len(c)+1 && p[len(c)] == '/' && p[:len(c)] == c
}

// verifyRoute is POST /v1/verify as auth(verifier, s.verifyKey) serves it, called directly: the call
// stays on the stack, and a verify root key, the credential of nearly every verification, is checked
// without building the caller a management call needs. Any other credential goes to authenticate,
// for its answer.
func (s *Server) verifyRoute(w http.ResponseWriter, r *http.Request) {
	c := call{start: accesslog.Start(r.Context())}
	if c.start.IsZero() {
		c.start = time.Now()
	}
	err := s.verifierRootKey(r)
	if err == nil {
		err = s.verifyKey(w, r, &c)
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

// verifierRootKey accepts a request whose bearer is a root key with the verify scope, and answers any
// other as authenticate(r, verifier) does.
func (s *Server) verifierRootKey(r *http.Request) error {
	if scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && s.isRootKey(cred) {
		rk, err := s.ver.RootKey(r.Context(), cred)
		if err != nil {
			return err
		}
		if rk != nil && rk.HasScope(keyplane.ScopeVerify) {
			return nil
		}
	}
	_, err := s.authenticate(r, verifier)
	return err
}

// Panic answers a request whose handler panicked: a 500 in the envelope, nothing of the panic.
func (s *Server) Panic(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errors.New("handler panicked"))
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

func requestID(ctx context.Context) string { return accesslog.RequestID(ctx) }

// ClientIP is the peer's address, or the one a trusted proxy says it forwarded for.
func (s *Server) ClientIP(r *http.Request) netip.Addr {
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

// HSTS is the Strict-Transport-Security header StrictTransport sends: two years, subdomains too.
const HSTS = "max-age=63072000; includeSubDomains"

// StrictTransport sends HSTS with every answer, API and dashboard alike, to a request that came over
// TLS: directly, or through a trusted proxy that says so with X-Forwarded-Proto. Over plain HTTP it
// sends nothing: browsers ignore the header there, and a local deployment must stay reachable.
func (s *Server) StrictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.OverTLS(r) {
			w.Header().Set("Strict-Transport-Security", HSTS)
		}
		next.ServeHTTP(w, r)
	})
}

// OverTLS reports whether the client reached keyplane over TLS, directly or through a trusted proxy
// whose X-Forwarded-Proto says https. The header is looked at first: most requests have none, and
// then the peer's address is never parsed.
func (s *Server) OverTLS(r *http.Request) bool {
	return r.TLS != nil || len(s.proxies) > 0 && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") && s.FromTrustedProxy(r)
}

// FromTrustedProxy reports whether the request's peer is one of the trusted proxies.
func (s *Server) FromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && s.trusted(a.Unmap())
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
	if err := s.svc.Health(ctx); err != nil {
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
	v.Store.Driver = s.svc.StoreDriver()
	v.Store.OK = s.svc.Health(ctx) == nil
	v.Status = "ok"
	if !v.Store.OK {
		v.Status = "degraded"
	}
	writeData(w, http.StatusOK, v)
}

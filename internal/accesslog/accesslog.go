// Package accesslog wraps HTTP handlers with what every request gets, API or dashboard alike: a
// request id (the caller's, when it is sane and holds no credential, else a new req_… id) in the context and the X-Request-Id
// header, recovery from panics, and one structured log line per request. It never logs headers,
// query strings or bodies: they may hold credentials; nor a credential a caller put in the path.
package accesslog

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/redact"
)

type infoKey struct{}

// request is what Wrap keeps of a request: its context, which answers RequestID and Start, and the
// writer that notes its status. One allocation holds all three, where context.WithValue, an info
// value and a status writer would be three: every verification pays for them.
type request struct {
	context.Context
	id     string
	start  time.Time
	writer statusWriter
}

func (q *request) Value(key any) any {
	if key == (infoKey{}) {
		return q
	}
	return q.Context.Value(key)
}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	if q, ok := ctx.Value(infoKey{}).(*request); ok {
		return q.id
	}
	return ""
}

// Start returns when the request of ctx arrived, or the zero time outside a request. Handlers that
// measure their own latency (the request log) use it rather than reading the clock again.
func Start(ctx context.Context) time.Time {
	if q, ok := ctx.Value(infoKey{}).(*request); ok {
		return q.start
	}
	return time.Time{}
}

// Wrap returns next with request ids, access logs and panic recovery. onPanic answers a request whose
// handler panicked before writing anything.
func Wrap(log *slog.Logger, next http.Handler, onPanic func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := r.Header.Get("X-Request-Id")
		if !sane(rid) {
			rid = id.New(id.Request)
		}
		q := &request{Context: r.Context(), id: rid, start: start, writer: statusWriter{ResponseWriter: w, status: http.StatusOK}}
		ctx := context.Context(q)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", rid)
		sw := &q.writer
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(ctx, "panic", "panic", redact.Secrets(fmt.Sprint(v)), "stack", string(debug.Stack()), "request_id", rid)
				if !sw.wrote {
					onPanic(sw, r)
				}
			}
			lvl := level(r.URL.Path, sw.status)
			if !log.Enabled(ctx, lvl) {
				return
			}
			log.LogAttrs(ctx, lvl, "http request", slog.String("request_id", rid), slog.String("method", r.Method),
				slog.String("path", redact.Secrets(r.URL.Path)), slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
		}()
		next.ServeHTTP(sw, r)
	})
}

// level is the access log line's level: debug for answered verifications (a 2xx or 3xx of
// /v1/verify… and /v1/auth…), info for everything else. Each verification is already an entry of the
// request log, with its key, code, address and latency; and at tens of thousands a second, a log line
// each (a write to stderr) would cost about a tenth of the node's CPU. Refusals of the caller (401
// for a wrong root key, 400, 429) and failures stay at info.
func level(path string, status int) slog.Level {
	if status < 400 && (path == "/v1/verify" || path == "/v1/auth" || strings.HasPrefix(path, "/v1/verify/") || strings.HasPrefix(path, "/v1/auth/")) {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// sane accepts a caller's request id only if it cannot corrupt a log line or a header, and holds
// nothing redact would cut: a key value sent as a request id would otherwise be kept whole in the
// access log, in error bodies and in the audit trail's requestId, where it can never be removed.
func sane(s string) bool {
	if s == "" || len(s) > 64 || redact.Secrets(s) != s {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
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

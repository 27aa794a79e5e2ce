package api

import (
	"bytes"
	"io"
	"net/http"

	"github.com/keyplane/keyplane/internal/service"
)

// Idempotency keys: the Idempotency-Key header of management POST and PATCH requests, whose rules
// are the service's (service.BeginIdempotent). Here they are only translated: the request's key, who
// sends it and what it asks go in; the first answer, captured whole, comes out again as it was, with
// Idempotent-Replayed: true and the replay's own X-Request-Id (accesslog sets it around the server).

// idempotent reports whether o takes an Idempotency-Key: every authenticated management POST and
// PATCH. The verification routes (the hot path) and the public ones never look at the header.
func (o operation) idempotent() bool {
	return (o.access == management || o.access == workspaced) && (o.method == http.MethodPost || o.method == http.MethodPatch)
}

// replayedHeader marks a replayed answer.
const replayedHeader = "Idempotent-Replayed"

// keptHeaders are the headers of an answer that a replay gives again; the rest (Cache-Control,
// X-Content-Type-Options) writeJSON sets on every answer anyway, and X-Request-Id is the replay's.
var keptHeaders = []string{"Content-Type", "Location"}

// answered wraps the error of a handler whose answer idempotent has already written: auth logs the
// call with it, and writes nothing more.
type answered struct{ err error }

func (a answered) Error() string { return a.err.Error() }
func (a answered) Unwrap() error { return a.err }

// idempotent runs h once per Idempotency-Key: a request without the header runs as it is; one with
// a key runs if it is the key's first (or the first's answer was not kept), and its answer is kept;
// a repeat gets the kept answer. Rules and errors are the service's.
func (s *Server) idempotent(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		keys := r.Header.Values(service.IdempotencyHeader)
		if len(keys) == 0 {
			return h(w, r, c)
		}
		if len(keys) > 1 {
			return invalid(service.IdempotencyHeader, "send one Idempotency-Key header, not %d", len(keys))
		}
		if err := service.ValidIdempotencyKey(keys[0]); err != nil {
			return err
		}
		body, whole, err := readBody(r)
		if err != nil {
			return err
		}
		if !whole {
			// Over the body limit: the handler refuses it (413) and changes nothing, so no key is
			// claimed for it.
			return h(w, r, c)
		}
		ctx := r.Context()
		idem, err := s.svc.BeginIdempotent(ctx, service.IdempotentRequest{
			Scope: idempotencyScope(c), Key: keys[0], Method: r.Method, Path: r.URL.RequestURI(), Body: body})
		if err != nil {
			return err
		}
		if a := idem.Replay; a != nil {
			writeAnswer(w, a.Status, a.Header, a.Body, true)
			return nil
		}
		rec := &recorder{header: http.Header{}}
		defer func() {
			// A handler that panics has failed on our side: let the key go, so that a retry runs
			// again, then panic on for accesslog's recovery.
			if p := recover(); p != nil {
				if err := idem.Finish(ctx, service.StoredAnswer{Status: http.StatusInternalServerError}); err != nil {
					s.log.ErrorContext(ctx, "idempotency key not released after a panic", "err", err)
				}
				panic(p)
			}
		}()
		herr := h(rec, r, c)
		if herr != nil {
			s.writeError(rec, r, herr)
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		kept := map[string]string{}
		for _, name := range keptHeaders {
			if v := rec.header.Get(name); v != "" {
				kept[name] = v
			}
		}
		// The answer is kept before it is sent: a client that has it and retries at once gets the
		// replay, not idempotency_key_in_use. Failing to keep it, the request has still run: it is
		// answered, and its key, still running, blocks its repeats until the lease ends.
		if err := idem.Finish(ctx, service.StoredAnswer{Status: rec.status, Header: kept, Body: rec.body.Bytes()}); err != nil {
			s.log.ErrorContext(ctx, "idempotent answer not kept", "err", err, "method", r.Method)
		}
		for name, vs := range rec.header {
			w.Header()[name] = vs
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
		if herr != nil {
			return answered{herr}
		}
		return nil
	}
}

// idempotencyScope is who sends a request, for its key: the credential (a root key's or a workspace
// key's id, of distinct forms), and the workspace a root key acts on, so that one key sent with two
// X-Workspace-Id values is two keys.
func idempotencyScope(c *call) string {
	return c.Actor.ID + "/" + c.ws
}

// readBody reads r's body, up to the management limit, and puts it back for the handler to read.
// whole is false when the body is over the limit: then it is put back as it was, unread.
func readBody(r *http.Request) (body []byte, whole bool, err error) {
	if r.ContentLength > maxManagementBody {
		return nil, false, nil
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, maxManagementBody+1))
	if err != nil {
		return nil, false, invalid("body", "the body could not be read")
	}
	if len(body) > maxManagementBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil, false, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true, nil
}

// writeAnswer writes a kept answer as writeJSON would have.
func writeAnswer(w http.ResponseWriter, status int, header map[string]string, body []byte, replayed bool) {
	h := w.Header()
	for name, v := range header {
		h.Set(name, v)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if replayed {
		h.Set(replayedHeader, "true")
	}
	w.WriteHeader(status)
	w.Write(body)
}

// recorder captures a handler's answer whole: status, headers and body.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

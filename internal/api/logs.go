package api

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request, c *call) error {
	lq, err := readList(r, "keyId", "code", "source")
	if err != nil {
		return err
	}
	q := lq.q
	if t := q.Get("tag"); len(t) > keyplane.MaxTagLen || !utf8.ValidString(t) || strings.ContainsRune(t, 0) {
		return invalid("tag", "must be at most %d bytes of UTF-8", keyplane.MaxTagLen)
	}
	entries, next, err := s.svc.ListLogs(r.Context(), c.Caller, c.ws, keyplane.LogFilter{
		KeyID: q.Get("keyId"), Code: keyplane.VerifyCode(q.Get("code")), Source: keyplane.LogSource(q.Get("source")),
		Tag:   q.Get("tag"),
		Since: lq.since, Until: lq.until, Limit: lq.limit, Cursor: lq.cursor,
	})
	if err != nil {
		return err
	}
	out := make([]*keyplane.RequestLogView, len(entries))
	for i := range entries {
		out[i] = entries[i].View()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) keyUsage(w http.ResponseWriter, r *http.Request, c *call) error {
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return err
	}
	g := r.URL.Query().Get("granularity")
	if !filterValue(g) {
		return invalid("granularity", "must be hour or day")
	}
	buckets, err := s.svc.KeyUsage(r.Context(), c.Caller, c.ws, r.PathValue("id"), service.UsageQuery{
		Granularity: keyplane.Granularity(g), Since: since, Until: until,
	})
	if err != nil {
		return err
	}
	out := make([]*keyplane.UsageBucketView, len(buckets))
	for i := range buckets {
		out[i] = buckets[i].View()
	}
	writeData(w, http.StatusOK, out)
	return nil
}

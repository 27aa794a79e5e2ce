package api

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// usageRow is one row of the JSON usage export: keyId or identityId, as the export is grouped.
type usageRow struct {
	KeyID        string                        `json:"keyId,omitempty"`
	IdentityID   string                        `json:"identityId,omitempty"`
	ExternalID   *string                       `json:"externalId"`
	Start        string                        `json:"start"`
	Total        int64                         `json:"total"`
	Valid        int64                         `json:"valid"`
	CreditsSpent int64                         `json:"creditsSpent"`
	Codes        map[keyplane.VerifyCode]int64 `json:"codes"`
}

// exportUsage streams the usage export as JSON (the envelope, its data an array of rows) or CSV (a
// header row, then a row per group and period). The request is checked before the answer starts;
// an error after it started can only cut the stream short, which the client sees as a truncated
// body (JSON that does not parse, CSV without its last line).
func (s *Server) exportUsage(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	var v keyplane.Validation
	format := q.Get("format")
	switch format {
	case "":
		format = "json"
	case "json", "csv":
	default:
		v.Add("format", "must be json or csv")
	}
	eq := service.ExportQuery{GroupBy: keyplane.UsageGroup(q.Get("groupBy")), Granularity: keyplane.Granularity(q.Get("granularity"))}
	for _, name := range []string{"groupBy", "granularity"} {
		if !filterValue(q.Get(name)) {
			v.Add(name, "must be at most 100 printable characters")
		}
	}
	var err error
	if eq.Since, err = timeParam(r, "since"); err != nil {
		var e *keyplane.Error
		if errors.As(err, &e) {
			v.Add("since", "%s", e.Details[0].Message)
		}
	}
	if eq.Until, err = timeParam(r, "until"); err != nil {
		var e *keyplane.Error
		if errors.As(err, &e) {
			v.Add("until", "%s", e.Details[0].Message)
		}
	}
	// The service checks the rest; one answer names every bad parameter, the query's and its.
	f, err := s.svc.CheckExport(r.Context(), c.Caller, c.ws, eq)
	if verr := v.Err(); verr != nil {
		var e *keyplane.Error
		if err != nil && (!errors.As(err, &e) || e.Code != keyplane.CodeInvalidRequest) {
			return err // not allowed, or not there: that comes first
		}
		if e != nil {
			for _, d := range e.Details {
				v.Add(d.Field, "%s", d.Message)
			}
		}
		return v.Err()
	}
	if err != nil {
		return err
	}
	byIdentity := f.GroupBy == keyplane.GroupByIdentity
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriterSize(w, 32<<10)
	started := false
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="usage.csv"`)
		cw := csv.NewWriter(bw)
		head := keyplane.UsageCSVHeader(f.GroupBy)
		err = s.svc.ExportUsage(r.Context(), c.Caller, c.ws, eq, func(row *keyplane.UsageRow) error {
			if !started {
				started = true
				w.WriteHeader(http.StatusOK)
				cw.Write(head)
			}
			cw.Write(row.CSV(f.GroupBy))
			return cw.Error()
		})
		if err == nil && !started {
			started = true
			w.WriteHeader(http.StatusOK)
			cw.Write(head)
		}
		cw.Flush()
	} else {
		h.Set("Content-Type", "application/json")
		n := 0
		enc := json.NewEncoder(bw)
		err = s.svc.ExportUsage(r.Context(), c.Caller, c.ws, eq, func(row *keyplane.UsageRow) error {
			if !started {
				started = true
				w.WriteHeader(http.StatusOK)
				bw.WriteString(`{"success":true,"data":[`)
			}
			if n > 0 {
				bw.WriteByte(',')
			}
			n++
			out := usageRow{KeyID: row.KeyID, Start: keyplane.FormatTime(row.Start), Total: row.Total, Valid: row.Valid,
				CreditsSpent: row.CreditsSpent, Codes: map[keyplane.VerifyCode]int64{}}
			if byIdentity {
				out.KeyID, out.IdentityID = "", row.IdentityID
			}
			if row.ExternalID != "" {
				out.ExternalID = &row.ExternalID
			}
			for code, k := range row.Codes {
				if k > 0 {
					out.Codes[code] = k
				}
			}
			return enc.Encode(out) // its newline is JSON whitespace
		})
		if err == nil {
			if !started {
				started = true
				w.WriteHeader(http.StatusOK)
				bw.WriteString(`{"success":true,"data":[`)
			}
			bw.WriteString("]}\n")
		}
	}
	if err != nil && !started {
		return err // nothing was sent: the envelope tells the error
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "usage export cut short", "err", err, "request_id", requestID(r.Context()))
		bw.Flush()
		return nil
	}
	if err := bw.Flush(); err != nil {
		return nil // the client went away
	}
	return nil
}

package dashboard

import (
	"bufio"
	"encoding/csv"
	"net/http"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// exportUsage downloads the usage export of the current month (GET /v1/usage's rows) as CSV: the
// logs page's "Export usage" form. It streams the service's rows as they come, like the API: the
// query is checked before the answer starts, and a failure after that can only cut the file short
// (it is logged).
func (d *Dashboard) exportUsage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	eq := service.ExportQuery{GroupBy: keyplane.UsageGroup(q.Get("groupBy")), Granularity: keyplane.Granularity(q.Get("granularity"))}
	f, err := d.svc.CheckExport(r.Context(), v.Caller, v.Workspace.ID, eq)
	if err != nil {
		if keyplane.ErrorCode(err) == keyplane.CodeInvalidRequest {
			d.fail(w, r, http.StatusBadRequest, "This export cannot be made: "+lower(logsFilterMessage(err))+" Choose from the lists on the logs page.")
			return
		}
		d.userError(w, r, v, err)
		return
	}
	head := keyplane.UsageCSVHeader(f.GroupBy)
	name := "usage-" + v.Workspace.Slug + "-" + f.Since.Format("2006-01") + "-by-" + string(f.GroupBy) + "-" + string(f.Granularity) + ".csv"
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 32<<10)
	cw := csv.NewWriter(bw)
	started := false
	start := func() {
		if !started {
			started = true
			w.WriteHeader(http.StatusOK)
			cw.Write(head)
		}
	}
	err = d.svc.ExportUsage(r.Context(), v.Caller, v.Workspace.ID, eq, func(row *keyplane.UsageRow) error {
		start()
		cw.Write(row.CSV(f.GroupBy))
		return cw.Error()
	})
	if err != nil && !started {
		h.Del("Content-Disposition")
		d.userError(w, r, v, err)
		return
	}
	if err != nil {
		d.log.ErrorContext(r.Context(), "usage export cut short", "err", err, "request_id", v.RequestID)
	} else {
		start()
	}
	cw.Flush()
	bw.Flush()
}

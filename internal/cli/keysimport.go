package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/api"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/service"
)

// maxImportLine bounds one line of an import file: a key's fields, meta included, take far less.
const maxImportLine = 1 << 20

// importReportEvery is how often a run without a terminal says how far it got.
const importReportEvery = 5 * time.Second

// listedFailures bounds the line numbers the summary lists; every failed line has its own line on
// stderr as it fails.
const listedFailures = 20

// ErrImportFailures is returned by `keys import` when some lines were not imported (the others
// were): the exit status is then 1, so that a script notices.
var ErrImportFailures = errors.New("some lines were not imported")

// importKeys is `keyplane keys import --workspace ID --file keys.jsonl`: one JSON object a line, the
// item of POST /v1/api-keys/import, sent through the service in batches of its maximum, so that a
// file of any size holds one batch in memory. Blank lines are skipped. A line that fails is reported
// on stderr with its number and the others are imported all the same; the exit status is 1 when any
// line failed. Each batch commits on its own: a run that stops midway has imported the batches
// before, and a run again reports their lines as already stored.
func (p *Program) importKeys(ctx context.Context, args []string) error {
	var wsRef, file string
	cfg, err := p.parse("keys import", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&wsRef, "workspace", "", "the workspace's id (ws_…) or slug (required)")
		fs.StringVar(&file, "file", "", "the JSONL file of keys, one JSON object a line; - for stdin (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	if wsRef == "" || file == "" {
		fmt.Fprintln(p.Stderr, "keyplane keys import: --workspace and --file are required")
		return ErrUsage
	}
	in, size := p.Stdin, int64(0)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("keys import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		return err
	}
	defer e.store.Close()
	caller := keyplane.System("cli")
	w, err := e.svc.GetWorkspace(ctx, caller, wsRef)
	if err != nil {
		if w, err = e.svc.GetWorkspaceBySlug(ctx, caller, wsRef); err != nil {
			return userError(err)
		}
	}
	run := &importRun{p: p, started: time.Now(), size: size, tty: isTerminal(p.Stderr)}
	err = run.stream(ctx, in, func(items []service.ImportKeyInput) ([]service.ImportResult, error) {
		return e.svc.ImportAPIKeys(ctx, caller, w.ID, items)
	})
	run.summary()
	if err != nil {
		return userError(err)
	}
	if run.failed > 0 {
		return ErrImportFailures
	}
	return nil
}

// importRun is the progress of one import.
type importRun struct {
	p                  *Program
	started, reported  time.Time
	size, read         int64 // bytes of the file, 0 when unknown (stdin), and read so far
	tty                bool
	imported, failed   int
	failedLines        []int
	lastProgressLength int
}

// stream reads lines into batches and hands each to send.
func (r *importRun) stream(ctx context.Context, in io.Reader, send func([]service.ImportKeyInput) ([]service.ImportResult, error)) error {
	br := bufio.NewReaderSize(in, 256<<10)
	var items []service.ImportKeyInput
	var lines []int
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		results, err := send(items)
		if err != nil {
			return fmt.Errorf("lines %d to %d: %w", lines[0], lines[len(lines)-1], err)
		}
		for _, res := range results {
			if res.Err == nil {
				r.imported++
				continue
			}
			r.failed++
			r.failedLines = append(r.failedLines, lines[res.Index])
			r.clearProgress()
			fmt.Fprintf(r.p.Stderr, "line %d: %s\n", lines[res.Index], describeItemError(res.Err))
		}
		items, lines = items[:0], lines[:0]
		r.progress(false)
		return nil
	}
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, tooLong, err := readLine(br, maxImportLine)
		r.read += int64(len(line))
		if len(bytes.TrimSpace(line)) > 0 || tooLong {
			item := service.ImportKeyInput{Err: keyplane.Errorf(keyplane.CodeInvalidRequest, "the line is longer than %d bytes", maxImportLine)}
			if !tooLong {
				item = api.ImportItem(line)
			}
			items, lines = append(items, item), append(lines, n)
			if len(items) == service.MaxImportBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", n, err)
		}
	}
}

// readLine reads one line, without its end; a line longer than max is skipped to its end and
// reported as tooLong. err is io.EOF with the file's last line.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, err
	}
}

func describeItemError(e *keyplane.Error) string {
	if len(e.Details) == 0 {
		return string(e.Code) + ": " + e.Message
	}
	parts := make([]string, len(e.Details))
	for i, d := range e.Details {
		parts[i] = d.Field + " " + d.Message
	}
	return string(e.Code) + ": " + strings.Join(parts, "; ")
}

// progress draws a bar on a terminal after each batch; elsewhere it writes a plain line every
// importReportEvery.
func (r *importRun) progress(final bool) {
	now := time.Now()
	elapsed := now.Sub(r.started)
	rate := float64(r.imported+r.failed) / max(elapsed.Seconds(), 1e-3)
	if !r.tty {
		if final || now.Sub(r.reported) < importReportEvery {
			return
		}
		r.reported = now
		fmt.Fprintf(r.p.Stderr, "keys import: %d imported, %d failed, %s, %.0f lines/s\n", r.imported, r.failed, elapsed.Round(time.Second), rate)
		return
	}
	const width = 30
	bar, pct := strings.Repeat("·", width), ""
	if r.size > 0 {
		f := min(float64(r.read)/float64(r.size), 1)
		done := int(f * width)
		bar = strings.Repeat("█", done) + strings.Repeat("·", width-done)
		pct = fmt.Sprintf(" %3.0f%%", f*100)
	}
	s := fmt.Sprintf("\r[%s]%s %d imported, %d failed, %.0f lines/s", bar, pct, r.imported, r.failed, rate)
	r.lastProgressLength = len(s)
	fmt.Fprint(r.p.Stderr, s)
}

// clearProgress wipes the bar before a line of its own is written.
func (r *importRun) clearProgress() {
	if r.tty && r.lastProgressLength > 0 {
		fmt.Fprint(r.p.Stderr, "\r"+strings.Repeat(" ", r.lastProgressLength)+"\r")
		r.lastProgressLength = 0
	}
}

// summary ends the run on stdout: what was imported, which lines failed, and how long it took.
func (r *importRun) summary() {
	r.clearProgress()
	var b strings.Builder
	fmt.Fprintf(&b, "imported %d keys, %d failed", r.imported, r.failed)
	if r.failed > 0 {
		nums := make([]string, 0, listedFailures)
		for _, n := range r.failedLines[:min(len(r.failedLines), listedFailures)] {
			nums = append(nums, strconv.Itoa(n))
		}
		more := ""
		if r.failed > listedFailures {
			more = fmt.Sprintf(" and %d more", r.failed-listedFailures)
		}
		fmt.Fprintf(&b, " (lines %s%s)", strings.Join(nums, ", "), more)
	}
	fmt.Fprintf(&b, ", in %s", time.Since(r.started).Round(time.Millisecond))
	fmt.Fprintln(r.p.Stdout, b.String())
}

// isTerminal reports whether w is a terminal: the progress bar redraws itself only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Package leakcheck searches what keyplane wrote for the secrets a test saw. The contract says
// secrets never appear in the audit trail, the request log, or the server's own logs, and that only
// digests (or, for recoverable values, ciphertexts) are stored; a test that looks for one leak where it
// expects it proves little, since a new debug line or a new column leaks in a place nobody thought
// of. A Checker learns every secret a test saw and searches every place keyplane wrote: output
// buffers, answers, every byte of the files in a data dir (the SQLite database, its -wal and -shm),
// every row of every PostgreSQL table, keyplane's Redis key names. Digests and ciphertexts cannot
// match: they do not contain the plaintext.
package leakcheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/internal/masterkey"
)

// Kind is a kind of secret, as the summaries count them.
type Kind string

// The kinds of secrets. Key values and webhook secrets are told by their shape, whatever kind they
// were added as.
const (
	RootKey  Kind = "root keys"
	APIKey   Kind = "API keys"
	Webhook  Kind = "webhook secrets"
	Password Kind = "passwords"
	Master   Kind = "master keys"
	Token    Kind = "other credentials"
)

var kinds = []Kind{RootKey, APIKey, Webhook, Password, Master, Token}

// Secret is one value and the forms in which a leak of it could show, in groups: each group's last
// form lies inside every other of the group (a key's random part inside its whole value), so a place
// without it holds none of the group, and a report names the largest form that is there.
type Secret struct {
	Kind   Kind
	What   string // where it came from, for reports; never the value
	Value  string
	groups [][]form
}

type form struct {
	name string
	b    []byte
}

// Place is something keyplane wrote, read when the search runs (logs grow until the node stops).
type Place struct {
	Name string
	Read func() ([]byte, error)
}

// Finding is one secret found in one place.
type Finding struct {
	Secret  *Secret
	Form    string // "whole value", "secret part", …
	Place   string
	Context string // around the hit, quoted, every known secret form redacted
}

func (f Finding) String() string {
	return fmt.Sprintf("leak: %s (%s) found in %s: %s", f.Secret.Describe(), f.Form, f.Place, f.Context)
}

// Checker collects secrets and places; its methods are safe for concurrent use.
type Checker struct {
	mu        sync.Mutex
	secrets   map[string]*Secret // by value
	forgiven  map[string]bool
	places    []Place
	dataDirs  []string
	dbURLs    []string
	redisURLs []string
	// readErrors are what was to be searched for but could not be read (a master key file), for
	// the next Scan's Stats.
	readErrors []error
}

// New returns an empty Checker.
func New() *Checker {
	return &Checker{secrets: map[string]*Secret{}, forgiven: map[string]bool{}}
}

var keyValueRE = regexp.MustCompile(`^[a-z][a-z0-9]*_(root|sk_live|sk_test|pk_live|pk_test)_[0-9A-Za-z]{38}$`)

// MinLen keeps values too short to be told from ordinary text out of the search: a password the CLI
// must refuse as too short would otherwise be "found" in its own error message.
const MinLen = 8

// Secret adds value. Key values are also searched for their secret part (after the prefix, type and
// environment) and their random part alone (32 base62 characters, found inside both others): logging
// a key without its prefix leaks it just the same. Webhook secrets are also searched for their base64
// part and the bytes it decodes to, the HMAC key itself. Every form is searched in hex too, the way
// PostgreSQL writes bytea as text and %x writes bytes.
func (c *Checker) Secret(kind Kind, what, value string) {
	if len(value) < MinLen {
		return
	}
	s := &Secret{Kind: kind, What: what, Value: value}
	switch {
	case keyValueRE.MatchString(value):
		s.Kind = APIKey
		if strings.Contains(value, "_root_") {
			s.Kind = RootKey
		}
		n := len(value)
		random := []byte(value[n-38 : n-6])
		// The hex of a value holds the hex of its random part: one hex form covers the three.
		s.groups = [][]form{
			{{"whole value", []byte(value)}, {"secret part", []byte(value[n-38:])}, {"random part", random}},
			hexForm("random part", random),
		}
	case strings.HasPrefix(value, "whsec_"):
		s.Kind = Webhook
		b64 := strings.TrimPrefix(value, "whsec_")
		s.groups = [][]form{{{"whole value", []byte(value)}, {"base64 part", []byte(b64)}}, hexForm("base64 part", []byte(b64))}
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil && len(raw) >= 16 {
			s.groups = append(s.groups, []form{{"decoded HMAC key", raw}}, hexForm("decoded HMAC key", raw))
		}
	default:
		s.groups = [][]form{{{"whole value", []byte(value)}}, hexForm("whole value", []byte(value))}
	}
	c.add(s)
}

func hexForm(name string, b []byte) []form {
	return []form{{name + " in hex", []byte(hex.EncodeToString(b))}}
}

// MasterKey adds a base64 master key and the 32 bytes it decodes to.
func (c *Checker) MasterKey(what, b64 string) {
	b64 = strings.TrimSpace(b64)
	raw, err := masterkey.Parse(b64)
	if err != nil {
		return
	}
	c.add(&Secret{Kind: Master, What: what, Value: b64, groups: [][]form{{{"base64", []byte(b64)}}, {{"raw bytes", raw}}, hexForm("raw bytes", raw)}})
}

func (c *Checker) add(s *Secret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.secrets[s.Value]; !ok {
		c.secrets[s.Value] = s
	}
}

// ReadMasterKeys adds the master keys kept in a data dir: serve generates one there on first start,
// and `master-key rotate` moves it aside. A key file that is there but cannot be read, or holds no
// master key, is a read error of the next Scan: the key it should hold would not be searched for.
func (c *Checker) ReadMasterKeys(dir string) {
	for _, name := range []string{masterkey.FileName, masterkey.PreviousFileName} {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			_, err = masterkey.Parse(strings.TrimSpace(string(b)))
		}
		if err != nil {
			c.mu.Lock()
			c.readErrors = append(c.readErrors, fmt.Errorf("leak check: reading the master key %s: %w", path, err))
			c.mu.Unlock()
			continue
		}
		c.MasterKey("master key ("+name+")", string(b))
	}
}

// Lookup returns the secret added with value, or nil.
func (c *Checker) Lookup(value string) *Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secrets[value]
}

// Forgive takes values out of the search, for a test that plants them on purpose.
func (c *Checker) Forgive(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range values {
		c.forgiven[v] = true
	}
}

// Place adds a place, read by each Scan.
func (c *Checker) Place(name string, read func() ([]byte, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.places = append(c.places, Place{name, read})
}

// Text adds what was written once and will not change, such as an answer.
func (c *Checker) Text(name string, b []byte) {
	c.Place(name, func() ([]byte, error) { return b, nil })
}

// Output adds a buffer that keeps growing, read as it is when Scan runs.
func (c *Checker) Output(name string, b fmt.Stringer) {
	c.Place(name, func() ([]byte, error) { return []byte(b.String()), nil })
}

// Store adds a data dir and, unless dbURL is empty, a PostgreSQL database. Scan lists their files and
// tables when it runs, and adds the data dir's master keys to the secrets.
func (c *Checker) Store(dataDir, dbURL string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dataDir != "" {
		c.dataDirs = append(c.dataDirs, dataDir)
	}
	if dbURL != "" {
		c.dbURLs = append(c.dbURLs, dbURL)
	}
}

// Redis adds the names of keyplane's keys in a Redis.
func (c *Checker) Redis(url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.redisURLs = append(c.redisURLs, url)
}

// Stats is what one Scan covered.
type Stats struct {
	Secrets    int
	Kinds      map[Kind]int
	Places     []string
	Bytes      int64
	Took       time.Duration
	ReadErrors []error
}

// DescribeKinds is "12 secrets (2 root keys, 9 API keys, 1 passwords)".
func DescribeKinds(n int, by map[Kind]int) string {
	var parts []string
	for _, k := range kinds {
		if by[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", by[k], k))
		}
	}
	return fmt.Sprintf("%d secrets (%s)", n, strings.Join(parts, ", "))
}

func (st Stats) String() string {
	return fmt.Sprintf("%s searched for in %d places (%.1f MB) in %s", DescribeKinds(st.Secrets, st.Kinds), len(st.Places),
		float64(st.Bytes)/1e6, st.Took.Round(time.Millisecond))
}

// Scan searches every place for every secret that was not forgiven. It reads the places now: the
// nodes should have stopped, so that what they buffer (the request log) has reached the database. A
// place that cannot be read is in ReadErrors, not silently left out.
func (c *Checker) Scan() ([]Finding, Stats) {
	began := time.Now()
	c.mu.Lock()
	dirs := append([]string(nil), c.dataDirs...)
	c.mu.Unlock()
	for _, d := range dirs {
		c.ReadMasterKeys(d)
	}
	c.mu.Lock()
	places := append([]Place(nil), c.places...)
	for _, d := range c.dataDirs {
		places = append(places, DataDir(d)...)
	}
	for _, u := range c.dbURLs {
		places = append(places, Postgres(u)...)
	}
	for _, u := range c.redisURLs {
		places = append(places, RedisKeys(u))
	}
	var secrets []*Secret
	for v, s := range c.secrets {
		if !c.forgiven[v] {
			secrets = append(secrets, s)
		}
	}
	c.mu.Unlock()
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].What < secrets[j].What })

	c.mu.Lock()
	st := Stats{Secrets: len(secrets), Kinds: map[Kind]int{}, ReadErrors: c.readErrors}
	c.readErrors = nil
	c.mu.Unlock()
	for _, s := range secrets {
		st.Kinds[s.Kind]++
	}
	var out []Finding
	for _, p := range places {
		st.Places = append(st.Places, p.Name)
		b, err := p.Read()
		if err != nil {
			st.ReadErrors = append(st.ReadErrors, fmt.Errorf("leak check: reading %s: %w", p.Name, err))
			continue
		}
		st.Bytes += int64(len(b))
		out = append(out, search(p.Name, b, secrets)...)
	}
	st.Took = time.Since(began)
	return out, st
}

// search reports each secret found in b once, in its largest form found.
func search(place string, b []byte, secrets []*Secret) []Finding {
	var out []Finding
	for _, s := range secrets {
	groups:
		for _, g := range s.groups {
			if !bytes.Contains(b, g[len(g)-1].b) {
				continue
			}
			for _, f := range g {
				if i := bytes.Index(b, f.b); i >= 0 {
					out = append(out, Finding{Secret: s, Form: f.name, Place: place, Context: redactedContext(b, i, len(f.b), secrets)})
					break groups // one finding per secret and place is enough to act on
				}
			}
		}
	}
	return out
}

// Describe names a secret by where it came from and its first few characters, never the whole of it.
func (s *Secret) Describe() string {
	show := 3
	switch s.Kind {
	case RootKey, APIKey:
		show = len(s.Value) - 38 + 2 // the head, which the key object shows anyway, and two characters
	case Webhook:
		show = len("whsec_") + 2
	}
	return fmt.Sprintf("%s %q (%d characters)", s.What, s.Value[:show]+"…", len(s.Value))
}

// redactedContext is up to 60 bytes either side of a hit, quoted, with every form of every secret in
// it (the hit's own and any neighbour's, cut by the window or not) replaced, so that the report shows
// where the secret was without showing it.
func redactedContext(b []byte, at, n int, secrets []*Secret) string {
	const side, margin = 60, 80 // margin: a neighbour cut by the window is still recognized
	lo, hi := max(0, at-side-margin), min(len(b), at+n+side+margin)
	w := b[lo:hi]
	mask := make([]bool, len(w))
	for i := at - lo; i < at-lo+n; i++ {
		mask[i] = true
	}
	for _, s := range secrets {
		for _, g := range s.groups {
			for _, f := range g {
				for off := 0; ; {
					i := bytes.Index(w[off:], f.b)
					if i < 0 {
						break
					}
					for j := off + i; j < off+i+len(f.b); j++ {
						mask[j] = true
					}
					off += i + 1
				}
			}
		}
	}
	var out []byte
	from, to := max(0, at-side)-lo, min(len(b), at+n+side)-lo
	for i := from; i < to; i++ {
		if !mask[i] {
			out = append(out, w[i])
		} else if i == from || !mask[i-1] {
			out = append(out, "[SECRET]"...)
		}
	}
	return fmt.Sprintf("%q", out)
}

// DataDir is every file in a data dir but the master key's own, read as raw bytes, so that the
// SQLite database's free pages and its write-ahead log hold nothing either.
func DataDir(dir string) []Place {
	var out []Place
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), masterkey.FileName) {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, Place{"data dir file " + rel, func() ([]byte, error) { return os.ReadFile(path) }})
		return nil
	})
	if err != nil {
		out = append(out, Place{"data dir " + dir, func() ([]byte, error) { return nil, err }})
	}
	return out
}

// Postgres is every row of every table of the database as PostgreSQL writes a row as text (bytea as
// hex, which the hex forms cover), one place per table.
func Postgres(dbURL string) []Place {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) []Place {
		return []Place{{"PostgreSQL", func() ([]byte, error) { return nil, err }}}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fail(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1, 2`)
	if err != nil {
		return fail(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
	if err != nil {
		return fail(err)
	}
	if len(tables) == 0 {
		return fail(errors.New("no tables: the search would find nothing"))
	}
	var out []Place
	for _, tb := range tables {
		var buf bytes.Buffer
		var row string
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+tb.Sanitize()+" t")
		if err == nil {
			_, err = pgx.ForEachRow(rows, []any{&row}, func() error {
				buf.WriteString(row)
				buf.WriteByte('\n')
				return nil
			})
		}
		// A row as text shows bytea in hex, where a secret would go unseen (the request log's blocks
		// hold its entries' text as bytes): those columns are searched as their bytes too.
		if err == nil {
			err = appendByteColumns(ctx, conn, tb, &buf)
		}
		b := buf.Bytes()
		out = append(out, Place{"PostgreSQL table " + strings.Join(tb, "."), func() ([]byte, error) { return b, err }})
	}
	return out
}

// appendByteColumns appends the values of tb's bytea columns to buf, as they are, a line each.
func appendByteColumns(ctx context.Context, conn *pgx.Conn, tb pgx.Identifier, buf *bytes.Buffer) error {
	rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea' ORDER BY ordinal_position`, tb[0], tb[1])
	if err != nil {
		return err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, c := range cols {
		var v []byte
		rows, err := conn.Query(ctx, "SELECT "+pgx.Identifier{c}.Sanitize()+" FROM "+tb.Sanitize())
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&v}, func() error {
			buf.Write(v)
			buf.WriteByte('\n')
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// RedisKeys is the names of keyplane's keys in a Redis: the rate limits are kept under names, and a
// key value in a name would stay there for a window.
func RedisKeys(url string) Place {
	return Place{"Redis key names", func() ([]byte, error) {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, err
		}
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var buf bytes.Buffer
		it := c.Scan(ctx, 0, "keyplane:*", 1000).Iterator()
		for it.Next(ctx) {
			buf.WriteString(it.Val())
			buf.WriteByte('\n')
		}
		return buf.Bytes(), it.Err()
	}}
}

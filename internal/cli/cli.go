// Package cli is the keyplane program: its commands, and the wiring of the pieces for serve. main only
// calls Run, so that tests run the real program in process on a free port.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/masterkey"
	"github.com/keyplane/keyplane/internal/password"
	"github.com/keyplane/keyplane/internal/service"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/postgres"
	"github.com/keyplane/keyplane/internal/store/sqlite"
	"github.com/keyplane/keyplane/internal/webhook"
)

// Version is set at build time with -ldflags "-X github.com/keyplane/keyplane/internal/cli.Version=…".
var Version = "dev"

// Program is one run of keyplane with its surroundings.
type Program struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Ready, if set, receives the server's address once it listens (tests use --addr 127.0.0.1:0).
	Ready func(addr string)
	// WebhookGuard, set by tests only, keeps webhook URL checks and deliveries on this machine (see
	// webhook.Guard).
	WebhookGuard *webhook.Guard
	// PasswordParams, set by tests only, is the cost of the password hashes the service makes
	// (service.Options.PasswordParams); zero, as the keyplane command leaves it: the default.
	PasswordParams password.Params
}

const usage = `keyplane: API key management

Usage:
  keyplane serve [flags]                                   run the service
  keyplane root-keys create --name N --scopes admin,verify  make an operator key (printed alone on stdout)
  keyplane root-keys list                                  list root keys: id, name, scopes, created, revoked
  keyplane root-keys revoke --id ID                        revoke a root key for good
  keyplane workspaces create --name N --slug S             make a workspace
  keyplane users create --email E --role R [--workspace S | --operator]
                                                           make a person's account (password from stdin);
                                                           with --workspace, an active member at once
  keyplane users update --email E --operator=true|false    give or take a person's operator powers
  keyplane members remove --workspace S --email E          end a person's membership (or invitation)
  keyplane keys import --workspace ID --file keys.jsonl    import existing keys, one JSON object a line, keeping
                                                           their values (POST /v1/api-keys/import's items);
                                                           exit status 1 when any line failed
  keyplane migrate                                         bring the database schema up to date
  keyplane audit verify                                    check every audit chain
  keyplane audit list [--workspace S] [--action A] [--limit N]
                                                           print a chain's entries, newest first, one JSON
                                                           object a line; without --workspace the operator's
                                                           chain (sign-ins, root keys, operator users)
  keyplane master-key rotate                               new master key; re-seal every stored value
  keyplane bench [flags]                                   load test: seed keys, drive POST /v1/verify with wrk
                                                           against keyplane and a bare handler, at a constant
                                                           rate, beside key creation, or --soak (docs/performance.md)
  keyplane version                                         print the version

Every command takes --data-dir and --database-url; "keyplane serve -h" lists the server's flags.
`

// ErrUsage is returned for a wrong command line; the message has been printed.
var ErrUsage = errors.New("usage")

// Run runs the command named by args (without the program name) until ctx ends or it is done.
func (p *Program) Run(ctx context.Context, args []string) error {
	if p.Getenv == nil {
		p.Getenv = os.Getenv
	}
	if len(args) == 0 {
		fmt.Fprint(p.Stderr, usage)
		return ErrUsage
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && (cmd == "root-keys" || cmd == "workspaces" || cmd == "users" || cmd == "members" || cmd == "audit" || cmd == "master-key" || cmd == "keys") {
		cmd += " " + rest[0]
		rest = rest[1:]
	}
	switch cmd {
	case "serve":
		return p.serve(ctx, rest)
	case "root-keys create":
		return p.createRootKey(ctx, rest)
	case "root-keys list":
		return p.listRootKeys(ctx, rest)
	case "root-keys revoke":
		return p.revokeRootKey(ctx, rest)
	case "workspaces create":
		return p.createWorkspace(ctx, rest)
	case "users create":
		return p.createUser(ctx, rest)
	case "users update":
		return p.updateUser(ctx, rest)
	case "members remove":
		return p.removeMember(ctx, rest)
	case "keys import":
		return p.importKeys(ctx, rest)
	case "migrate":
		return p.migrate(ctx, rest)
	case "audit verify":
		return p.auditVerify(ctx, rest)
	case "audit list":
		return p.auditList(ctx, rest)
	case "master-key rotate":
		return p.rotateMasterKey(ctx, rest)
	case "bench":
		return p.bench(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintln(p.Stdout, "keyplane", Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(p.Stdout, usage)
		return nil
	}
	fmt.Fprintf(p.Stderr, "keyplane: unknown command %q\n\n%s", strings.Join(args[:1], " "), usage)
	return ErrUsage
}

func (p *Program) logger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(p.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(p.Stderr, opts))
}

// parse reads a command's flags; extra declares the command's own.
func (p *Program) parse(name string, serve bool, args []string, extra func(fs *config.FlagSet)) (*config.Config, error) {
	fs := config.NewFlagSet("keyplane "+name, serve, p.Getenv, p.Stderr)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(p.Stderr, "keyplane %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, ErrUsage
	}
	cfg, err := fs.Finish()
	if err != nil {
		fmt.Fprintf(p.Stderr, "keyplane %s: %v\n", name, err)
		return nil, ErrUsage
	}
	return cfg, nil
}

// openStore opens the configured database, migrating it.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s, err := sqlite.Open(ctx, sqlitePath(cfg))
	if err != nil {
		return nil, fmt.Errorf("open SQLite: %w", err)
	}
	return s, nil
}

// sqlitePath is the SQLite database file of a configuration without a database URL.
func sqlitePath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "keyplane.db") }

// env is a command's opened surroundings: store, catalog, master key and service.
type env struct {
	cfg   *config.Config
	store store.Store
	svc   *service.Service
	log   *slog.Logger
	box   *masterkey.Box
	// createdMasterKey reports that this start wrote a new master key file.
	createdMasterKey bool
}

// openOptions are what serve gives the service beyond the configuration; other commands give none.
type openOptions struct {
	Log      *slog.Logger // nil: one from the configuration
	Forget   func(...[]byte)
	Admit    func(...[]byte)
	Webhooks service.WebhookOptions
	SignIn   service.SignInLimits
	// PublicURL is where portal links are made (serve's --public-url, or the one it derived).
	PublicURL string
}

func (p *Program) open(ctx context.Context, cfg *config.Config, o openOptions) (*env, error) {
	log, hooks := o.Log, o.Webhooks
	hooks.Guard = p.WebhookGuard
	if log == nil {
		log = p.logger(cfg)
	}
	cat, err := cfg.Catalog()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	mk, created, err := masterkey.LoadOrCreate(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	prev, err := masterkey.LoadPrevious(cfg.MasterKeyPrevious, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var previous [][]byte
	if prev != nil {
		previous = append(previous, prev)
	}
	box, err := masterkey.New(mk, previous...)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	hooks.Policy = webhook.URLPolicy{AllowHTTP: cfg.WebhookAllowHTTP, AllowPrivate: cfg.WebhookAllowPrivate}
	hooks.Schedule = cfg.WebhookRetrySchedule
	svc := service.New(service.Options{Store: st, Catalog: cat, Box: box, KeyPrefix: cfg.KeyPrefix, Forget: o.Forget, Admit: o.Admit, Logger: log,
		LogRetention: cfg.LogRetention, UsageRetention: cfg.UsageRetention, EventRetention: cfg.EventRetention, Webhooks: hooks, SignIn: o.SignIn, PasswordParams: p.PasswordParams,
		PublicURL: o.PublicURL, PortalSessionTTL: cfg.PortalSessionTTL})
	return &env{cfg: cfg, store: st, svc: svc, log: log, box: box, createdMasterKey: created}, nil
}

// print opens the store and service, runs fn, and prints its result alone on a line, so that scripts
// can capture it: $(keyplane root-keys create …).
func (p *Program) print(ctx context.Context, cfg *config.Config, fn func(e *env) (string, error)) error {
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		return err
	}
	defer e.store.Close()
	out, err := fn(e)
	if err != nil {
		return userError(err)
	}
	fmt.Fprintln(p.Stdout, out)
	return nil
}

func (p *Program) createRootKey(ctx context.Context, args []string) error {
	var name, scopes string
	cfg, err := p.parse("root-keys create", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&name, "name", "", "a name for the key (required)")
		fs.StringVar(&scopes, "scopes", "", "admin, verify, or admin,verify (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		var list []string
		if scopes != "" {
			list = strings.Split(scopes, ",")
		}
		_, value, err := e.svc.CreateRootKey(ctx, keyplane.System("cli"), name, list)
		return value, err
	})
}

func (p *Program) listRootKeys(ctx context.Context, args []string) error {
	cfg, err := p.parse("root-keys list", false, args, nil)
	if err != nil {
		return helpOK(err)
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		keys, err := e.svc.ListRootKeys(ctx, keyplane.System("cli"))
		if err != nil {
			return "", err
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.UTC().Format(time.RFC3339)
			}
			// The name is the operator's own text: tabs and line breaks in it must not break the table.
			name := strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return ' '
				}
				return r
			}, k.Name)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, name, strings.Join(k.Scopes, ","), k.CreatedAt.UTC().Format(time.RFC3339), revoked)
		}
		tw.Flush()
		return strings.TrimSuffix(b.String(), "\n"), nil
	})
}

func (p *Program) revokeRootKey(ctx context.Context, args []string) error {
	var keyID string
	cfg, err := p.parse("root-keys revoke", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&keyID, "id", "", "the root key's id, from keyplane root-keys list (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	if keyID == "" {
		fmt.Fprintln(p.Stderr, "keyplane root-keys revoke: --id is required")
		return ErrUsage
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		k, err := e.svc.RevokeRootKey(ctx, keyplane.System("cli"), keyID)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("revoked %s (%s) at %s", k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339)), nil
	})
}

func (p *Program) createWorkspace(ctx context.Context, args []string) error {
	var name, slug string
	cfg, err := p.parse("workspaces create", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&name, "name", "", "the workspace's name (required)")
		fs.StringVar(&slug, "slug", "", "its URL name: lower-case letters, digits, dashes (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		w, err := e.svc.CreateWorkspace(ctx, keyplane.System("cli"), service.WorkspaceInput{Name: name, Slug: slug})
		if err != nil {
			return "", err
		}
		return w.ID, nil
	})
}

func (p *Program) createUser(ctx context.Context, args []string) error {
	var email, role, wsSlug string
	var operator bool
	cfg, err := p.parse("users create", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&email, "email", "", "the person's email (required)")
		fs.StringVar(&role, "role", "", "owner, admin, developer or viewer (with --workspace)")
		fs.StringVar(&wsSlug, "workspace", "", "slug of the workspace they join")
		fs.BoolVar(&operator, "operator", false, "make them an operator admin, who sees every workspace")
	})
	if err != nil {
		return helpOK(err)
	}
	if (wsSlug == "") == !operator {
		// Both at once would change two audit chains in one go: make an operator, then a member.
		fmt.Fprintln(p.Stderr, "keyplane users create: give --workspace S (with --role) or --operator, not both")
		return ErrUsage
	}
	if wsSlug != "" && role == "" {
		fmt.Fprintln(p.Stderr, "keyplane users create: --workspace needs --role owner|admin|developer|viewer")
		return ErrUsage
	}
	pw, err := bufio.NewReader(p.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	return p.print(ctx, cfg, func(e *env) (string, error) {
		in := service.UserInput{Email: email, Password: pw, Operator: operator, Role: keyplane.Role(role)}
		if wsSlug != "" {
			w, err := e.svc.GetWorkspaceBySlug(ctx, keyplane.System("cli"), wsSlug)
			if err != nil {
				return "", err
			}
			in.WorkspaceID = w.ID
		}
		u, err := e.svc.CreateUser(ctx, keyplane.System("cli"), in)
		if err != nil {
			return "", err
		}
		return u.ID, nil
	})
}

// updateUser changes what users create never takes away: the operator flag.
func (p *Program) updateUser(ctx context.Context, args []string) error {
	var email string
	var operator, given bool
	var flags *config.FlagSet
	cfg, err := p.parse("users update", false, args, func(fs *config.FlagSet) {
		flags = fs
		fs.StringVar(&email, "email", "", "the person's email (required)")
		fs.BoolVar(&operator, "operator", false, "true: an operator admin, who sees every workspace; false: not (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	// Required, with either value: a bare "users update --email E" must not take the flag away.
	flags.Visit(func(f *flag.Flag) { given = given || f.Name == "operator" })
	if email == "" || !given {
		fmt.Fprintln(p.Stderr, "keyplane users update: give --email E and --operator=true or --operator=false")
		return ErrUsage
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		u, err := e.svc.SetOperator(ctx, keyplane.System("cli"), email, operator)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s operator=%t", u.ID, u.Operator), nil
	})
}

// removeMember ends a person's membership of a workspace, or revokes their invitation.
func (p *Program) removeMember(ctx context.Context, args []string) error {
	var email, wsSlug string
	cfg, err := p.parse("members remove", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&email, "email", "", "the person's email (required)")
		fs.StringVar(&wsSlug, "workspace", "", "slug of the workspace (required)")
	})
	if err != nil {
		return helpOK(err)
	}
	if email == "" || wsSlug == "" {
		fmt.Fprintln(p.Stderr, "keyplane members remove: give --workspace S and --email E")
		return ErrUsage
	}
	return p.print(ctx, cfg, func(e *env) (string, error) {
		sys := keyplane.System("cli")
		w, err := e.svc.GetWorkspaceBySlug(ctx, sys, wsSlug)
		if err != nil {
			return "", err
		}
		ms, err := e.svc.ListMembers(ctx, sys, w.ID)
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			if strings.EqualFold(m.Email, strings.TrimSpace(email)) {
				gone, err := e.svc.RemoveMember(ctx, sys, w.ID, m.UserID)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("removed %s (%s, %s) from %s", gone.Email, gone.Role, gone.Status, w.Slug), nil
			}
		}
		return "", keyplane.Errorf(keyplane.CodeNotFound, "%s is not a member of %s", email, w.Slug)
	})
}

func (p *Program) migrate(ctx context.Context, args []string) error {
	cfg, err := p.parse("migrate", false, args, nil)
	if err != nil {
		return helpOK(err)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.Stdout, "%s schema is up to date\n", st.Driver())
	return st.Close()
}

// rotateMasterKey replaces the master key and re-seals every stored value with the new one. With the
// key in the data dir, it writes a new key file and keeps the old key as the previous one; with
// KEYPLANE_MASTER_KEY set, the operator has already put the new key there and the old one in
// KEYPLANE_MASTER_KEY_PREVIOUS, and this re-seals what the old key sealed.
func (p *Program) rotateMasterKey(ctx context.Context, args []string) error {
	cfg, err := p.parse("master-key rotate", false, args, nil)
	if err != nil {
		return helpOK(err)
	}
	if cfg.MasterKey == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		// A rotation cut short (killed, or its re-sealing failed) left values sealed with the key
		// that is now the previous one. Rotating the files again would drop that key for good, and
		// those values with it: finish that rotation first, with the keys the data dir holds now.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, masterkey.PreviousFileName)); err == nil {
			res, err := p.rewrap(ctx, cfg)
			if err != nil {
				return fmt.Errorf("finish the rotation before (nothing rotated): %w", err)
			}
			fmt.Fprintf(p.Stdout, "finished the rotation before: re-sealed %d key values and %d webhook secrets\n", res.Secrets, res.WebhookSecrets)
		}
		if _, _, err := masterkey.Rotate(cfg.DataDir); err != nil {
			return err
		}
		fmt.Fprintf(p.Stdout, "wrote a new master key to %s/%s; the old one is in %s until every value is re-sealed\n",
			cfg.DataDir, masterkey.FileName, masterkey.PreviousFileName)
	} else if cfg.MasterKeyPrevious == "" {
		return userError(errors.New("KEYPLANE_MASTER_KEY is set: put the new key there and the old one in KEYPLANE_MASTER_KEY_PREVIOUS, then run this again"))
	}
	res, err := p.rewrap(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.Stdout, "re-sealed %d key values and %d webhook secrets (%d already current)\n", res.Secrets, res.WebhookSecrets, res.AlreadyCurrent)
	fmt.Fprintln(p.Stdout, "restart every keyplane serve so that it loads the new key; the previous key can be removed once they run")
	return nil
}

// rewrap re-seals every stored value with the master key the configuration names now.
func (p *Program) rewrap(ctx context.Context, cfg *config.Config) (service.RewrapResult, error) {
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		return service.RewrapResult{}, err
	}
	defer e.store.Close()
	return e.svc.Rewrap(ctx, keyplane.System("master-key rotate"))
}

func (p *Program) auditVerify(ctx context.Context, args []string) error {
	cfg, err := p.parse("audit verify", false, args, nil)
	if err != nil {
		return helpOK(err)
	}
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		return err
	}
	defer e.store.Close()
	results, err := e.svc.VerifyAllAudit(ctx, keyplane.System("cli"))
	if err != nil {
		return err
	}
	bad := 0
	for _, r := range results {
		chain := r.Chain
		if chain == store.OperatorChain {
			chain = "operator"
		}
		if r.Valid {
			fmt.Fprintf(p.Stdout, "ok    %s: %d entries\n", chain, r.Entries)
		} else {
			bad++
			fmt.Fprintf(p.Stdout, "BAD   %s: %d entries, first bad entry %s\n", chain, r.Entries, r.FirstBadID)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d audit chain(s) failed verification", bad)
	}
	fmt.Fprintf(p.Stdout, "all %d chains verify\n", len(results))
	return nil
}

func (p *Program) auditList(ctx context.Context, args []string) error {
	var wsSlug, action string
	limit := 50
	cfg, err := p.parse("audit list", false, args, func(fs *config.FlagSet) {
		fs.StringVar(&wsSlug, "workspace", "", "slug of the workspace whose trail to print (default: the operator's chain)")
		fs.StringVar(&action, "action", "", "only entries of this action, such as user.sign_in_failed")
		fs.IntVar(&limit, "limit", limit, "how many entries, newest first (1–10000)")
	})
	if err != nil {
		return helpOK(err)
	}
	if limit < 1 || limit > 10_000 {
		fmt.Fprintln(p.Stderr, "keyplane audit list: --limit must be 1 to 10000")
		return ErrUsage
	}
	e, err := p.open(ctx, cfg, openOptions{})
	if err != nil {
		return err
	}
	defer e.store.Close()
	sys := keyplane.System("cli")
	list := func(f store.AuditFilter) ([]keyplane.AuditEntry, string, error) {
		return e.svc.ListOperatorAudit(ctx, sys, f)
	}
	if wsSlug != "" {
		w, err := e.svc.GetWorkspaceBySlug(ctx, sys, wsSlug)
		if err != nil {
			return err
		}
		list = func(f store.AuditFilter) ([]keyplane.AuditEntry, string, error) {
			return e.svc.ListAudit(ctx, sys, w.ID, f)
		}
	}
	f := store.AuditFilter{Action: action}
	for left := limit; left > 0; {
		f.Limit = min(left, 100)
		entries, next, err := list(f)
		if err != nil {
			return err
		}
		for _, en := range entries {
			fmt.Fprintf(p.Stdout, "%s\n", en.JSON())
		}
		left -= len(entries)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	return nil
}

var errHelp = errors.New("help shown")

// helpOK makes -h a success: the usage was printed because it was asked for.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// userError turns a service error into a line a person reads.
func userError(err error) error {
	var e *keyplane.Error
	if errors.As(err, &e) {
		if len(e.Details) > 0 {
			parts := make([]string, len(e.Details))
			for i, d := range e.Details {
				parts[i] = d.Field + " " + d.Message
			}
			return errors.New(strings.Join(parts, "; "))
		}
		return errors.New(e.Message)
	}
	return err
}

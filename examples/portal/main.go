// Command portal is a tiny platform that puts keyplane's portal inside its own settings page: it
// signs its own user in (a demo sign-in: a name and an email, kept in a signed cookie), asks keyplane
// for a one-time portal link with the Go SDK, and frames the portal in an <iframe>, with a way back
// to itself (returnUrl).
//
// Run keyplane with this platform's origin among the portal's frame ancestors, then this, with a
// root key of the admin scope (or a workspace secret key with the portal:write permission):
//
//	go run ./cmd/keyplane serve --portal-frame-ancestors http://localhost:8090
//	KEYPLANE_KEY=$(go run ./cmd/keyplane root-keys create --name portal-example --scopes admin) go run ./examples/portal
//
// and open http://localhost:8090. See README.md beside this file for the flags and for why the
// portal's cookie needs HTTPS anywhere but on localhost.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyplane/keyplane/client"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(2)
	}
}

// config is what the platform needs to know; each flag has an environment twin.
type config struct {
	Addr        string // where this platform listens
	PublicURL   string // this platform's own URL as the browser sees it: the portal's way back
	KeyplaneURL string // keyplane's API
	Key         string // a root key (admin scope) or a workspace key with portal:write
	Workspace   string // a workspace id (ws_…) or slug; a workspace key needs none
	Brand       string // this platform's name, in its own header
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("portal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", env("PORTAL_ADDR", "127.0.0.1:8090"), "address to listen on (PORTAL_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", env("PORTAL_PUBLIC_URL", ""), "this platform's URL in the browser, the portal's way back (PORTAL_PUBLIC_URL; default http://localhost:PORT)")
	fs.StringVar(&c.KeyplaneURL, "keyplane-url", env("KEYPLANE_URL", "http://127.0.0.1:8080"), "keyplane's URL (KEYPLANE_URL)")
	fs.StringVar(&c.Key, "key", env("KEYPLANE_KEY", ""), "a root key with the admin scope, or a workspace secret key with portal:write (KEYPLANE_KEY)")
	fs.StringVar(&c.Workspace, "workspace", env("KEYPLANE_WORKSPACE", "default"), "the workspace's id or slug, for a root key (KEYPLANE_WORKSPACE)")
	fs.StringVar(&c.Brand, "brand", env("PORTAL_BRAND", "Acme Cloud"), "this platform's name (PORTAL_BRAND)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Key == "" {
		return c, errors.New("set KEYPLANE_KEY (or -key): a root key with the admin scope, or a workspace key with portal:write")
	}
	if c.PublicURL == "" {
		_, port, ok := strings.Cut(c.Addr, ":")
		if !ok {
			return c, fmt.Errorf("-addr %q: want host:port", c.Addr)
		}
		// localhost, not 127.0.0.1: the portal's links are under 127.0.0.1 unless keyplane has a
		// --public-url, and the platform is then on another site, as it would be in production.
		c.PublicURL = "http://localhost:" + port
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	kp := client.New(cfg.KeyplaneURL, cfg.Key, client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	// A root key names its workspace in each call; a workspace key acts on its own.
	if strings.Contains(cfg.Key, "_root_") {
		id, err := workspaceID(ctx, kp, cfg.Workspace)
		if err != nil {
			return err
		}
		kp = kp.InWorkspace(id)
	}
	p, err := newPlatform(cfg, sdkLinker{kp}, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: cfg.Addr, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("platform listening", "addr", cfg.Addr, "open", cfg.PublicURL+"/")
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// workspaceID finds a workspace by id or slug, for a root key, which names the workspace it acts
// on in each call.
func workspaceID(ctx context.Context, kp *client.Client, idOrSlug string) (string, error) {
	if strings.HasPrefix(idOrSlug, "ws_") {
		return idOrSlug, nil
	}
	for ws, err := range kp.AllWorkspaces(ctx, client.ListParams{}) {
		if err != nil {
			return "", fmt.Errorf("looking for workspace %q: %w", idOrSlug, err)
		}
		if ws.Slug == idOrSlug {
			return ws.ID, nil
		}
	}
	return "", fmt.Errorf("no workspace with the slug %q", idOrSlug)
}

// user is the platform's own signed-in user. A real platform has its own accounts; this one takes
// a name and an email on trust.
type user struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	// Role is the portal role this demo gives the user: a real platform decides it from its own
	// roles (who in the customer's team may manage keys).
	Role string `json:"role"`
}

// link is a one-time portal link, as keyplane answered it.
type link struct {
	URL       string
	ExpiresAt time.Time
}

// linker asks keyplane for a portal link for u.
type linker interface {
	PortalLink(ctx context.Context, u user, returnURL string) (link, error)
}

//go:embed templates/*.html static/*.css
var files embed.FS

// platform is the web app: a sign-in page and a settings page that frames the portal.
type platform struct {
	cfg     config
	links   linker
	log     *slog.Logger
	pages   *template.Template
	cookies []byte // signs the session cookie; new at each start, which signs everybody out
}

const sessionCookie = "platform_session"

func newPlatform(cfg config, links linker, log *slog.Logger) (http.Handler, error) {
	pages, err := template.New("").Funcs(template.FuncMap{"page": withTitle}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &platform{cfg: cfg, links: links, log: log, pages: pages, cookies: make([]byte, 32)}
	rand.Read(p.cookies)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.home)
	mux.HandleFunc("POST /signin", p.signIn)
	mux.HandleFunc("POST /signout", p.signOut)
	mux.Handle("GET /static/", http.FileServerFS(files))
	// The platform's own forms refuse cross-origin posts, as keyplane's do.
	return http.NewCrossOriginProtection().Handler(mux), nil
}

// home is the sign-in form, or, for a signed-in user, the settings page with the portal framed.
func (p *platform) home(w http.ResponseWriter, r *http.Request) {
	u, ok := p.signedIn(r)
	if !ok {
		p.render(w, http.StatusOK, "signin.html", "", map[string]any{"Brand": p.cfg.Brand})
		return
	}
	// A link works once, so each view of the page asks for a new one; the page is never cached,
	// nor kept for the back button with a used link in it.
	l, err := p.links.PortalLink(r.Context(), u, p.cfg.PublicURL+"/")
	if err != nil {
		// Never the key: the SDK's error says what keyplane answered (code, message, request id).
		p.log.Error("asking keyplane for a portal link", "user", u.ID, "err", err)
		p.render(w, http.StatusBadGateway, "settings.html", "", map[string]any{"Brand": p.cfg.Brand, "User": u,
			"Error": "The API keys page is not available right now. Try again in a moment."})
		return
	}
	frame, err := url.Parse(l.URL)
	if err != nil || (frame.Scheme != "https" && frame.Scheme != "http") {
		p.log.Error("keyplane answered a link that is not an http(s) URL", "user", u.ID)
		http.Error(w, "bad portal link", http.StatusBadGateway)
		return
	}
	p.render(w, http.StatusOK, "settings.html", frame.Scheme+"://"+frame.Host, map[string]any{
		"Brand": p.cfg.Brand, "User": u, "Link": l.URL, "ExpiresAt": l.ExpiresAt})
}

// withTitle gives the layout a page's data with its title.
func withTitle(data map[string]any, title string) map[string]any {
	out := make(map[string]any, len(data)+1)
	for k, v := range data {
		out[k] = v
	}
	out["Title"] = title
	return out
}

func (p *platform) signIn(w http.ResponseWriter, r *http.Request) {
	u := user{Name: strings.TrimSpace(r.PostFormValue("name")), Email: strings.TrimSpace(r.PostFormValue("email")), Role: r.PostFormValue("role")}
	var problems []string
	if u.Name == "" || len(u.Name) > 100 {
		problems = append(problems, "Enter your name (at most 100 characters).")
	}
	if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email || len(u.Email) > 254 {
		problems = append(problems, "Enter an email address such as ana@example.com.")
	}
	switch u.Role {
	case "admin", "developer", "viewer":
	default:
		problems = append(problems, "Choose a role.")
	}
	if len(problems) > 0 {
		p.render(w, http.StatusBadRequest, "signin.html", "", map[string]any{"Brand": p.cfg.Brand, "Problems": problems, "Form": u})
		return
	}
	// The platform's own id for its user: keyplane's audit trail names the user by it.
	sum := sha256.Sum256([]byte(strings.ToLower(u.Email)))
	u.ID = "user_" + hex.EncodeToString(sum[:8])
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: p.sign(u), Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: 8 * 3600})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *platform) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sign makes the cookie value: the user, then an HMAC of it under the platform's key.
func (p *platform) sign(u user) string {
	b, _ := json.Marshal(u)
	body := base64.RawURLEncoding.EncodeToString(b)
	return body + "." + p.mac(body)
}

func (p *platform) mac(body string) string {
	m := hmac.New(sha256.New, p.cookies)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *platform) signedIn(r *http.Request) (user, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return user{}, false
	}
	body, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(p.mac(body))) {
		return user{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	var u user
	if err != nil || json.Unmarshal(b, &u) != nil || u.ID == "" {
		return user{}, false
	}
	return u, true
}

// render writes a page with the platform's security headers. frameSrc is the portal's origin on
// the settings page: the only thing the page may frame.
func (p *platform) render(w http.ResponseWriter, status int, name, frameSrc string, data map[string]any) {
	h := w.Header()
	csp := "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	if frameSrc != "" {
		csp += "; frame-src " + frameSrc
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	w.WriteHeader(status)
	if err := p.pages.ExecuteTemplate(w, name, data); err != nil {
		p.log.Error("rendering", "page", name, "err", err)
	}
}

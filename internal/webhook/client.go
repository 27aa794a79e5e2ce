package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ClientOptions configures a Client; zero fields take the documented defaults.
type ClientOptions struct {
	Policy    URLPolicy
	Lookup    LookupFunc    // nil: DefaultLookup
	Timeout   time.Duration // whole attempt: connect, TLS, headers and body; default 15s
	MaxBody   int           // bytes of the response body kept; default 4096
	UserAgent string        // default "keyplane-webhooks"
	TLSConfig *tls.Config   // nil: system roots; tests pass an httptest server's client config
	// Guard, set by tests only, refuses every connection off this machine, and stands in for the
	// resolver when Lookup is nil: see Guard.
	Guard *Guard
}

// Client posts webhook deliveries. It never uses a proxy, never follows redirects and never connects
// to a blocked address (unless the policy allows private ones), checking the address it actually
// connects to. It is safe for concurrent use.
type Client struct {
	policy    URLPolicy
	lookup    LookupFunc
	timeout   time.Duration
	maxBody   int
	userAgent string
	guard     *Guard
	dialer    *net.Dialer
	transport *http.Transport
	http      *http.Client
}

// Result is the outcome of one delivery attempt.
type Result struct {
	StatusCode int // 0 when no response
	// Body is the first MaxBody bytes of the response body, made valid UTF-8 with NUL bytes replaced,
	// so it can be stored and shown as text. It never exceeds MaxBody bytes.
	Body   string
	Header http.Header // the response's headers (for Retry-After)
	// Err is nil when a response came, whatever its status. It is set for a refused URL or address, a
	// transport error or a timeout; when the timeout strikes while the body is being read, StatusCode
	// and the partial Body are kept as well, so a caller deciding success must look at Err first.
	// Err.Error() is a short sentence fit for a delivery log.
	Err      error
	Duration time.Duration
}

// NewClient returns a Client with its own transport, so that its connections and limits are not
// shared with any other HTTP use in the process.
func NewClient(o ClientOptions) *Client {
	c := &Client{
		policy:    o.Policy,
		lookup:    o.Lookup,
		timeout:   o.Timeout,
		maxBody:   o.MaxBody,
		userAgent: o.UserAgent,
		guard:     o.Guard,
	}
	if c.lookup == nil {
		c.lookup = DefaultLookup
		if c.guard != nil {
			c.lookup = c.guard.Lookup
		}
	}
	if c.timeout <= 0 {
		c.timeout = 15 * time.Second
	}
	if c.maxBody <= 0 {
		c.maxBody = 4096
	}
	if c.userAgent == "" {
		c.userAgent = "keyplane-webhooks"
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	}
	c.dialer = &net.Dialer{KeepAlive: 30 * time.Second, Control: c.control}
	c.transport = &http.Transport{
		Proxy:       nil, // never from the environment: a proxy would make the dial-time check moot
		DialContext: c.dialContext,
		// No DialTLSContext: the transport then wraps our connection in TLS itself, taking ServerName
		// from the URL's host, so certificates are verified against the name the user gave.
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  c.timeout,
		MaxResponseHeaderBytes: 64 << 10,
		// Without compression the bytes counted against MaxBody are the bytes on the wire, and a
		// receiver cannot make us inflate anything.
		DisableCompression: true,
	}
	c.http = &http.Client{
		Transport: c.transport,
		// A redirect is the receiver's answer, recorded as such; following it would let a public URL
		// send us to a private one and would deliver the payload somewhere the user did not configure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Close closes idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Post sends body to rawURL with header (which Post does not modify) and reports what happened. The
// whole attempt, reading the body included, is bounded by the Client's Timeout.
func (c *Client) Post(ctx context.Context, rawURL string, header http.Header, body []byte) Result {
	start := time.Now()
	res := c.post(ctx, rawURL, header, body)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) post(parent context.Context, rawURL string, header http.Header, body []byte) Result {
	u, err := c.policy.CheckURL(rawURL)
	if err != nil {
		return Result{Err: err}
	}
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Result{Err: &postError{msg: Describe(err), err: err}}
	}
	if header != nil {
		req.Header = header.Clone()
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{Err: c.wrap(parent, err, "")}
	}
	// Closing before the body is read to the end makes the transport drop the connection instead of
	// draining it, which is what bounds the work a huge response can cause.
	defer resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode, Header: resp.Header}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxBody)))
	res.Body = cleanBody(b, c.maxBody)
	if err != nil {
		res.Err = c.wrap(parent, err, " reading the response body")
	}
	return res
}

// wrap gives err the message a person should see, keeping err for errors.Is and errors.As.
func (c *Client) wrap(parent context.Context, err error, during string) error {
	var ue *URLError
	if errors.As(err, &ue) {
		return ue
	}
	msg := Describe(err)
	// Our own deadline, as opposed to the caller's, is reported with its length: "timed out after 15s"
	// tells the receiver's owner what they need to fix. Not for a lookup that timed out, which says
	// no more than any other failed lookup (see HostMsg).
	var rse *resolveError
	if parent.Err() == nil && isTimeout(err) && !errors.As(err, &rse) {
		msg = "timed out after " + c.timeout.String()
	}
	return &postError{msg: msg + during, err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// cleanBody makes the kept bytes of a response body safe to store and show as text.
func cleanBody(b []byte, max int) string {
	// The cut at max bytes may split a character; drop its start rather than show a replacement
	// character the server never sent.
	if len(b) == max {
		for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
			if tail := b[len(b)-i:]; utf8.RuneStart(tail[0]) {
				if !utf8.FullRune(tail) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	// NUL is valid UTF-8 but PostgreSQL text refuses it.
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	// Replacements are 3 bytes where the originals may be 1; keep the promise of at most max bytes.
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// dialContext resolves the host itself, so that it can refuse blocked addresses before any packet is
// sent, and then dials by IP address.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = c.lookup(ctx, host)
		if err != nil {
			return nil, &resolveError{host: host, err: err, allowPrivate: c.policy.AllowPrivate}
		}
		if len(addrs) == 0 {
			return nil, &resolveError{host: host, err: errors.New("no addresses"), allowPrivate: c.policy.AllowPrivate}
		}
	}
	// A copy, since the lookup may hand the same slice to concurrent callers.
	addrs = append([]netip.Addr(nil), addrs...)
	for i, a := range addrs {
		a = a.Unmap()
		addrs[i] = a
		// Any blocked answer refuses the whole name, as CheckHost does, rather than skipping to a
		// public one: mixed answers are a rebinding technique, and the two checks should agree.
		if !c.policy.AllowPrivate && Blocked(a) {
			return nil, &refusedError{host: host, addr: a}
		}
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := c.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// control runs just before connect(2) with the address actually being connected to. dialContext has
// already checked it; this second check is what still holds if a future change dials some other way
// (a different dial path, a resolver inside the dialer), since nothing reaches the network without it.
//
// A Guard is checked first, and whatever the policy: a test's connection must not leave the machine.
func (c *Client) control(_, address string, _ syscall.RawConn) error {
	if c.guard != nil {
		if err := c.guard.checkAddr(address); err != nil {
			return err
		}
	}
	if c.policy.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused: cannot check address %q", address)
	}
	if a := ap.Addr().Unmap(); Blocked(a) {
		return &refusedError{addr: a}
	}
	return nil
}

package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxURLLen bounds an endpoint URL, so that a stored URL stays small and readable in the dashboard.
const maxURLLen = 2048

// URLPolicy says which endpoint URLs are acceptable. The zero value is the production policy:
// https only, public addresses only.
type URLPolicy struct {
	AllowHTTP    bool // accept http:// as well (local development)
	AllowPrivate bool // accept loopback, private, link-local and other blocked addresses (local development, tests)
}

// URLError is a refused endpoint URL. Msg reads as the predicate of the field ("must not contain
// credentials"), so the API can show "url must not contain credentials" to a user. Detail, when set,
// is what the resolver answered: for the server's log only (see HostMsg).
type URLError struct{ Msg, Detail string }

func (e URLError) Error() string { return e.Msg }

// As lets errors.As find a URLError whether the caller's target is a URLError or a *URLError; the
// package returns *URLError, and this spares callers from having to know which.
func (e URLError) As(target any) bool {
	if t, ok := target.(*URLError); ok {
		*t = e
		return true
	}
	return false
}

func urlErr(format string, args ...any) *URLError {
	return &URLError{Msg: fmt.Sprintf(format, args...)}
}

const privateMsg = "must not point to a private, loopback or link-local address"

// HostMsg is all a tenant learns when a host name fails the address check, whether it does not
// resolve, times out or resolves to a blocked address: naming the answer ("resolves to 10.0.3.7",
// "no such host") would let a tenant map the deployment's own network through its resolver. The
// server logs the detail.
const HostMsg = "must resolve to public addresses only: the host could not be resolved, or points to a private, loopback, link-local or metadata address"

// unresolvedMsg is what a tenant learns of a failed lookup where private addresses are allowed.
const unresolvedMsg = "could not be resolved"

// CheckURL parses raw and checks it against the policy without any network access. Host names are
// not resolved here: CheckHost does that, and the Client checks again when it connects.
//
// Spellings of an IPv4 address that are not dotted-decimal (http://2130706433/, http://0x7f.0.0.1/,
// http://0177.0.0.1/) are not IP literals to net/netip, so they pass here as host names. They are not
// parsed specially: whatever a resolver makes of them (some turn them into 127.0.0.1, others find no
// such host) goes through the same address check in CheckHost and in the Client's dialer, which is
// what the connection would actually use.
func (p URLPolicy) CheckURL(raw string) (*url.URL, error) {
	if len(raw) > maxURLLen {
		return nil, urlErr("must be at most %d bytes", maxURLLen)
	}
	absolute := "must be an absolute https:// URL"
	if p.AllowHTTP {
		absolute = "must be an absolute http:// or https:// URL"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, urlErr("%s", absolute)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return nil, urlErr("%s", absolute)
		}
	default:
		return nil, urlErr("%s", absolute)
	}
	if u.User != nil {
		return nil, urlErr("must not contain credentials")
	}
	if u.Hostname() == "" {
		return nil, urlErr("must include a host name")
	}
	// net/http turns a non-ASCII host into its IDNA form before dialling (mapping full-width digits
	// and dots too, so that "１２７。０。０。１" becomes 127.0.0.1), while the checks here and the
	// resolver see the name as written: refuse it, so that every check judges the host that is dialled.
	for i := 0; i < len(u.Hostname()); i++ {
		if u.Hostname()[i] >= utf8.RuneSelf {
			return nil, urlErr("must write its host name in ASCII (an internationalized name in its xn-- form)")
		}
	}
	if !validHost(u.Hostname()) {
		return nil, urlErr("must have a host name of letters, digits, hyphens and dots, or an IP address")
	}
	// url.Parse drops an empty fragment ("https://a/#"), so look at the text itself; '#' cannot appear
	// unescaped anywhere else in a URL.
	if strings.Contains(raw, "#") {
		return nil, urlErr("must not contain a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, urlErr("must have a port between 1 and 65535")
		}
	}
	if err := p.checkName(u.Hostname()); err != nil {
		return nil, err
	}
	// The URL is stored and dialled as u.String(), which percent-encodes what raw may have written
	// raw (up to 3 bytes per byte): bound that form too, or the delivery's own check would refuse it.
	if len(u.String()) > maxURLLen {
		return nil, urlErr("must be at most %d bytes once percent-encoded", maxURLLen)
	}
	return u, nil
}

// validHost reports whether host is an IP address or a name of the characters resolvers take. url.Parse
// lets others through ("https://0]/" has the host "0]"), which the checks would judge as one host
// (CheckHost strips brackets: "0") and the client would fail to dial as another. An IPv6 zone is an
// interface name and is held to the same characters ("[::%25]]" is no address a dialer takes).
func validHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Zone()
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkName applies the checks that need no resolution: a blocked IP literal or a localhost name.
func (p URLPolicy) checkName(host string) error {
	if p.AllowPrivate {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if Blocked(a) {
			return urlErr(privateMsg)
		}
		return nil
	}
	// RFC 6761 reserves localhost and its subdomains for loopback; many resolvers answer them without
	// asking DNS. A trailing dot names the same host.
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return urlErr("must not point to localhost")
	}
	return nil
}

// LookupFunc resolves a host name to its addresses. It is a parameter so that tests, and deployments
// with their own resolver, can supply one.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// DefaultLookup resolves host with the system resolver. IPv4-mapped answers are unmapped so that they
// are judged and dialled as the IPv4 addresses they are.
func DefaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// CheckHost resolves host (a URL's Hostname(); an IP literal is used as is) and refuses it if it
// cannot be resolved or if any address is blocked. Refusing on any rather than all is deliberate: a
// client may pick any of the answers, and a name that mixes public and private answers is a known way
// to slip past a check. lookup nil means DefaultLookup.
func (p URLPolicy) CheckHost(ctx context.Context, lookup LookupFunc, host string) error {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return urlErr("must include a host name")
	}
	if err := p.checkName(host); err != nil {
		return err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // checkName has judged the literal
	}
	if lookup == nil {
		lookup = DefaultLookup
	}
	unresolved := HostMsg
	if p.AllowPrivate {
		unresolved = unresolvedMsg
	}
	addrs, err := lookup(ctx, host)
	if errors.Is(err, ErrOffMachine) {
		return &URLError{Msg: err.Error(), Detail: err.Error()} // a test's guard, never production's
	}
	if err != nil {
		return &URLError{Msg: unresolved, Detail: host + " could not be resolved: " + resolveReason(err)}
	}
	if len(addrs) == 0 {
		return &URLError{Msg: unresolved, Detail: host + " could not be resolved: no addresses"}
	}
	if p.AllowPrivate {
		return nil
	}
	for _, a := range addrs {
		if Blocked(a) {
			return &URLError{Msg: HostMsg, Detail: host + " resolves to the blocked address " + a.Unmap().String()}
		}
	}
	return nil
}

// resolveReason is the short cause of a failed lookup, without the "lookup <name> on <server>:"
// preamble that *net.DNSError adds and that means nothing to a user.
func resolveReason(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "no such host"
		case dnsErr.IsTimeout:
			return "timed out"
		case dnsErr.Err != "":
			return dnsErr.Err
		}
	}
	return err.Error()
}

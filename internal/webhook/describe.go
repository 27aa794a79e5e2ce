package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// postError carries the readable message chosen when the error happened (when the timeout's length is
// still known) and the original error for errors.Is and errors.As.
type postError struct {
	msg string
	err error
}

func (e *postError) Error() string { return e.msg }
func (e *postError) Unwrap() error { return e.err }

// refusedError is a connection not attempted because the address is blocked.
type refusedError struct {
	host string // empty when only the address is known
	addr netip.Addr
}

// Error is what the tenant's delivery log shows: nothing of what the resolver answered (see HostMsg).
func (e *refusedError) Error() string { return deliveryHostMsg }

func (e *refusedError) detail() string {
	if e.host == "" || e.host == e.addr.String() {
		return "refused: " + e.addr.String() + " is a blocked address"
	}
	return "refused: " + e.host + " resolves to the blocked address " + e.addr.String()
}

// deliveryHostMsg is HostMsg as a delivery log's sentence. A host that does not resolve reads the
// same as one that resolves to a blocked address, so that the log does not tell the two apart.
const deliveryHostMsg = "refused: the URL's host " + HostMsg

// resolveError is a host name that could not be turned into addresses at dial time.
type resolveError struct {
	host         string
	err          error
	allowPrivate bool
}

// Error is what the tenant's delivery log shows: no resolver answer ("no such host"), which would tell
// an internal name from an unknown one.
func (e *resolveError) Error() string {
	if errors.Is(e.err, ErrOffMachine) {
		return e.err.Error() // a test's guard: it says what a test tried to reach, and never runs in production
	}
	if e.allowPrivate {
		return "could not resolve the URL's host"
	}
	return deliveryHostMsg
}

func (e *resolveError) detail() string {
	return "could not resolve " + e.host + ": " + resolveReason(e.err)
}
func (e *resolveError) Unwrap() error { return e.err }

// Detail is Describe with what the resolver answered, for the server's log only: the name looked up
// and its addresses or error. It is Describe(err) where there is nothing more to say.
func Detail(err error) string {
	var (
		ue  *URLError
		re  *refusedError
		rse *resolveError
		dns *net.DNSError
	)
	switch {
	case errors.As(err, &re):
		return re.detail()
	case errors.As(err, &rse):
		return rse.detail()
	case errors.As(err, &ue) && ue.Detail != "":
		return ue.Detail
	case errors.As(err, &dns):
		return "could not resolve " + dns.Name + ": " + resolveReason(dns)
	}
	return Describe(err)
}

// Describe turns an error from a delivery into a short sentence for a delivery log, without the
// "Post \"https://…\": dial tcp 1.2.3.4:443:" preamble that net/http adds. nil gives "".
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var (
		pe    *postError
		ue    *URLError
		re    *refusedError
		rse   *resolveError
		dnsE  *net.DNSError
		hostE x509.HostnameError
		authE x509.UnknownAuthorityError
		certE x509.CertificateInvalidError
		recE  tls.RecordHeaderError
		alert tls.AlertError
		verE  *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &pe):
		return pe.msg
	case errors.As(err, &ue):
		return ue.Msg
	case errors.As(err, &re):
		return re.Error()
	case errors.As(err, &rse):
		return rse.Error()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case isTimeout(err):
		return "timed out"
	case errors.As(err, &dnsE):
		return "could not resolve the URL's host"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &hostE):
		return "TLS: certificate is not valid for " + hostE.Host
	case errors.As(err, &authE):
		return "TLS: certificate signed by an unknown authority"
	case errors.As(err, &certE):
		if certE.Reason == x509.Expired {
			return "TLS: certificate has expired or is not yet valid"
		}
		return "TLS: invalid certificate: " + trimTLS(certE.Error())
	case errors.As(err, &verE):
		return "TLS: " + trimTLS(verE.Error())
	case errors.As(err, &recE):
		return "TLS: the server did not answer with TLS"
	case errors.As(err, &alert):
		return "TLS: the server refused the handshake (" + trimTLS(alert.Error()) + ")"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed by the server"
	}
	msg := innermost(err).Error()
	if strings.Contains(msg, "server gave HTTP response to HTTPS client") {
		return "TLS: the server answered with plain HTTP"
	}
	if t := trimTLS(msg); t != msg {
		return "TLS: " + t
	}
	return strings.TrimPrefix(strings.TrimPrefix(msg, "net/http: "), "http: ")
}

// innermost strips the wrappers whose messages only repeat the method, URL and address.
func innermost(err error) error {
	for {
		var ue *url.Error
		var oe *net.OpError
		switch {
		case errors.As(err, &ue):
			err = ue.Err
		case errors.As(err, &oe) && oe.Err != nil:
			err = oe.Err
		default:
			return err
		}
	}
}

func trimTLS(s string) string {
	s = strings.TrimPrefix(s, "tls: ")
	return strings.TrimPrefix(s, "x509: ")
}

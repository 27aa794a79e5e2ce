package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// server is an httptest server that counts the requests reaching its handler.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// port returns the server's port, for URLs that use a host name mapped by a test lookup.
func (s *server) port() string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

var devPolicy = URLPolicy{AllowHTTP: true, AllowPrivate: true}

// newClient returns a Client kept on this machine by a Guard, and fails the test, when it ends, if the
// client tried to leave it (a connection, or a lookup that would have asked DNS).
func newClient(t *testing.T, o ClientOptions) *Client {
	t.Helper()
	if o.Guard == nil {
		o.Guard = &Guard{}
	}
	c := NewClient(o)
	t.Cleanup(func() {
		c.Close()
		if r := o.Guard.Refused(); len(r) > 0 {
			t.Errorf("the test tried to reach %q, off this machine", r)
		}
	})
	return c
}

func TestPostStatusAndBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || string(b) != `{"a":1}` {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/fail" {
			w.Header().Set("Retry-After", "120")
			http.Error(w, "database unavailable", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("thanks " + r.Header.Get("User-Agent")))
	})
	c := newClient(t, ClientOptions{Policy: devPolicy})

	res := c.Post(context.Background(), s.URL+"/ok", nil, []byte(`{"a":1}`))
	if res.Err != nil || res.StatusCode != 200 || res.Body != "thanks keyplane-webhooks" {
		t.Fatalf("ok: %+v", res)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v", res.Duration)
	}

	res = c.Post(context.Background(), s.URL+"/fail", nil, []byte(`{"a":1}`))
	if res.Err != nil || res.StatusCode != 500 || res.Body != "database unavailable\n" {
		t.Fatalf("fail: %+v", res)
	}
	if res.Header.Get("Retry-After") != "120" {
		t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
	}
}

func TestPostSignedHeadersVerify(t *testing.T) {
	secret := NewSecret()
	key, err := DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	verified := make(chan error, 1)
	var gotUA, gotCT string
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotUA, gotCT = r.Header.Get("User-Agent"), r.Header.Get("Content-Type")
		verified <- verify(secret, r.Header, b, time.Now())
	})
	c := newClient(t, ClientOptions{Policy: devPolicy, UserAgent: "test-agent"})
	body := []byte(`{"type":"webhook.test"}`)
	h := http.Header{}
	Headers(h, [][]byte{key}, "msg_2", time.Now(), body)
	res := c.Post(context.Background(), s.URL, h, body)
	if res.Err != nil || res.StatusCode != 200 {
		t.Fatalf("%+v", res)
	}
	if err := <-verified; err != nil {
		t.Fatalf("receiver could not verify: %v", err)
	}
	if gotUA != "test-agent" || gotCT != "application/json" {
		t.Errorf("User-Agent %q, Content-Type %q", gotUA, gotCT)
	}
	if len(h) != 4 {
		t.Errorf("Post changed the caller's header: %v", h)
	}
}

func TestPostBodyCutWithoutReadingTheRest(t *testing.T) {
	const total = 100 << 20
	written := make(chan int, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("a", 32<<10))
		n := 0
		for n < total {
			m, err := w.Write(chunk)
			n += m
			if err != nil {
				break
			}
		}
		written <- n
	})
	c := newClient(t, ClientOptions{Policy: devPolicy})
	start := time.Now()
	res := c.Post(context.Background(), s.URL, nil, nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Post took %v", d)
	}
	if res.Err != nil || res.StatusCode != 200 || len(res.Body) != 4096 {
		t.Fatalf("status %d, body %d bytes, err %v", res.StatusCode, len(res.Body), res.Err)
	}
	select {
	case n := <-written:
		if n >= total {
			t.Fatalf("the server wrote all %d bytes: the client read the body to the end", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server is still writing 5 s after the client stopped reading")
	}
}

func TestPostCleansBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\xff\xfe\x00end\xc3"))
	})
	c := newClient(t, ClientOptions{Policy: devPolicy})
	res := c.Post(context.Background(), s.URL, nil, nil)
	if want := "ok\uFFFD\uFFFDend\uFFFD"; res.Body != want {
		t.Fatalf("Body = %q, want %q", res.Body, want)
	}

	// Cut inside a character at MaxBody: the partial character is dropped, and replacements never push
	// the body past MaxBody.
	s2 := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("abcdefg\u00e9xyz"))
	})
	c2 := newClient(t, ClientOptions{Policy: devPolicy, MaxBody: 8})
	if res := c2.Post(context.Background(), s2.URL, nil, nil); res.Body != "abcdefg" {
		t.Fatalf("Body cut inside a character = %q", res.Body)
	}
	s3 := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	})
	res = c2.Post(context.Background(), s3.URL, nil, nil)
	if len(res.Body) > 8 || !utf8.ValidString(res.Body) || strings.Contains(res.Body, "\x00") {
		t.Fatalf("Body of NULs = %q", res.Body)
	}
}

// hang returns a handler that blocks until the client goes away or the test ends.
func hang(t *testing.T) http.HandlerFunc {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // runs before the server's Close, which waits for handlers
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

func TestPostTimeoutHangingServer(t *testing.T) {
	s := newServer(t, hang(t))
	c := newClient(t, ClientOptions{Policy: devPolicy, Timeout: 300 * time.Millisecond})
	start := time.Now()
	res := c.Post(context.Background(), s.URL, nil, nil)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Post took %v", d)
	}
	if res.StatusCode != 0 || res.Err == nil || res.Err.Error() != "timed out after 300ms" {
		t.Fatalf("status %d, err %v", res.StatusCode, res.Err)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) && !isTimeout(res.Err) {
		t.Errorf("Err does not unwrap to a timeout: %#v", res.Err)
	}
	if Describe(res.Err) != res.Err.Error() {
		t.Errorf("Describe = %q", Describe(res.Err))
	}
}

func TestPostTimeoutTricklingServer(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 100 { // one byte every 100ms for 10 s
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	c := newClient(t, ClientOptions{Policy: devPolicy, Timeout: 500 * time.Millisecond})
	start := time.Now()
	res := c.Post(context.Background(), s.URL, nil, nil)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Post took %v", d)
	}
	if res.Err == nil || !strings.HasPrefix(res.Err.Error(), "timed out after 500ms") {
		t.Fatalf("err %v", res.Err)
	}
	if res.StatusCode != 200 || len(res.Body) == 0 || len(res.Body) > 10 || strings.Trim(res.Body, "x") != "" {
		t.Fatalf("status %d, body %q", res.StatusCode, res.Body)
	}
}

func TestPostCallerCancel(t *testing.T) {
	s := newServer(t, hang(t))
	c := newClient(t, ClientOptions{Policy: devPolicy, Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := c.Post(ctx, s.URL, nil, nil)
	if res.Err == nil || strings.Contains(res.Err.Error(), "10s") {
		t.Fatalf("err %v: the caller's deadline must not be reported as the client's timeout", res.Err)
	}
}

func TestPostRedirectNotFollowed(t *testing.T) {
	target := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	c := newClient(t, ClientOptions{Policy: devPolicy})
	res := c.Post(context.Background(), s.URL, nil, []byte("{}"))
	if res.Err != nil || res.StatusCode != http.StatusFound {
		t.Fatalf("%+v", res)
	}
	if res.Header.Get("Location") != target.URL+"/elsewhere" {
		t.Errorf("Location = %q", res.Header.Get("Location"))
	}
	if n := target.hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

func TestPostRefusesPrivate(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	lookup := mapLookup(map[string][]string{
		"inside.test":  {"127.0.0.1"},
		"mixed.test":   {"93.184.216.34", "127.0.0.1"},
		"numeric.test": {"::ffff:127.0.0.1"},
	})
	c := newClient(t, ClientOptions{Policy: URLPolicy{AllowHTTP: true}, Lookup: lookup})
	// The delivery log (Describe, res.Err) says the same of a name that does not resolve and of one
	// that resolves to a blocked address, and names neither the address nor the resolver's error;
	// the server's log (Detail) has both.
	for _, tc := range []struct{ url, want, detail string }{
		{s.URL, privateMsg, privateMsg},
		{"http://localhost:" + s.port(), "must not point to localhost", "must not point to localhost"},
		{"http://inside.test:" + s.port(), deliveryHostMsg, "refused: inside.test resolves to the blocked address 127.0.0.1"},
		{"http://mixed.test:" + s.port(), deliveryHostMsg, "refused: mixed.test resolves to the blocked address 127.0.0.1"},
		{"http://numeric.test:" + s.port(), deliveryHostMsg, "refused: numeric.test resolves to the blocked address 127.0.0.1"},
		{"http://nowhere.test:" + s.port(), deliveryHostMsg, "could not resolve nowhere.test: no such host"},
	} {
		res := c.Post(context.Background(), tc.url, nil, nil)
		if res.Err == nil || res.Err.Error() != tc.want || Describe(res.Err) != tc.want || res.StatusCode != 0 {
			t.Errorf("Post(%s) = %d, %v; want %q", tc.url, res.StatusCode, res.Err, tc.want)
		}
		if got := Detail(res.Err); got != tc.detail {
			t.Errorf("Detail of Post(%s) = %q, want %q", tc.url, got, tc.detail)
		}
	}
	// Numeric spellings of 127.0.0.1 are refused whatever a resolver makes of them: glibc's (inet_aton)
	// answers 127.0.0.1, Go's own asks DNS and finds nothing. Both answers come from tables: a test
	// must not ask a DNS server, which is off the machine.
	asInetAton := mapLookup(map[string][]string{"2130706433": {"127.0.0.1"}, "0x7f.0.0.1": {"127.0.0.1"}})
	for _, lookup := range []LookupFunc{asInetAton, mapLookup(nil)} {
		c := newClient(t, ClientOptions{Policy: URLPolicy{AllowHTTP: true}, Lookup: lookup})
		for _, host := range []string{"2130706433", "0x7f.0.0.1"} {
			if res := c.Post(context.Background(), "http://"+host+":"+s.port(), nil, nil); res.Err == nil {
				t.Errorf("Post(%s) got status %d", host, res.StatusCode)
			}
		}
	}
	if n := s.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
}

// A name that is public when checked and private when connected to (DNS rebinding) is refused at dial
// time, because the dialer checks the addresses it is about to connect to.
func TestPostDNSRebinding(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	var calls atomic.Int32
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	policy := URLPolicy{AllowHTTP: true}
	u, err := policy.CheckURL("http://rebind.test:" + s.port() + "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.CheckHost(context.Background(), lookup, u.Hostname()); err != nil {
		t.Fatalf("CheckHost at save time: %v", err)
	}
	c := newClient(t, ClientOptions{Policy: policy, Lookup: lookup})
	res := c.Post(context.Background(), u.String(), nil, nil)
	if res.Err == nil || res.Err.Error() != deliveryHostMsg || Detail(res.Err) != "refused: rebind.test resolves to the blocked address 127.0.0.1" {
		t.Fatalf("Post = %d, %v", res.StatusCode, res.Err)
	}
	if n := s.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
}

// The dialer's Control hook sees the address connect(2) gets; it must refuse blocked ones by itself.
// Control is called directly, with no connection behind it: these clients need no Guard, which would
// refuse the public addresses.
func TestDialControl(t *testing.T) {
	c := NewClient(ClientOptions{})
	if c.dialer.Control == nil {
		t.Fatal("no Control hook on the dialer")
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"[::ffff:10.0.0.1]:80", false},
		{"[fe80::1%eth0]:80", false},
		{"not-an-address:80", false},
	} {
		if err := c.dialer.Control("tcp", tc.addr, nil); (err == nil) != tc.ok {
			t.Errorf("Control(%s) = %v", tc.addr, err)
		}
	}
	if err := c.dialer.Control("tcp", "127.0.0.1:80", nil); Describe(&net.OpError{Op: "dial", Err: err}) != deliveryHostMsg ||
		Detail(&net.OpError{Op: "dial", Err: err}) != "refused: 127.0.0.1 is a blocked address" {
		t.Errorf("Describe(control error) = %q", Describe(&net.OpError{Op: "dial", Err: err}))
	}
	open := NewClient(ClientOptions{Policy: URLPolicy{AllowPrivate: true}})
	if err := open.dialer.Control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("AllowPrivate Control = %v", err)
	}
}

// The certificate of httptest's TLS server is for example.com and 127.0.0.1. Mapping example.com to
// 127.0.0.1 in the lookup and posting to https://example.com/ succeeds only if the TLS ServerName
// comes from the URL and not from the dialled address; another name on the same address fails.
func TestPostTLSServerNameFromURL(t *testing.T) {
	var hits atomic.Int32
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("tls ok " + r.Host))
	}))
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	lookup := mapLookup(map[string][]string{
		"example.com":      {"127.0.0.1"},
		"hooks.other.test": {"127.0.0.1"},
	})
	tlsConfig := s.Client().Transport.(*http.Transport).TLSClientConfig
	c := newClient(t, ClientOptions{Policy: URLPolicy{AllowPrivate: true}, Lookup: lookup, TLSConfig: tlsConfig})

	res := c.Post(context.Background(), "https://example.com:"+port+"/", nil, nil)
	if res.Err != nil || res.StatusCode != 200 || res.Body != "tls ok example.com:"+port {
		t.Fatalf("%d %q %v", res.StatusCode, res.Body, res.Err)
	}
	res = c.Post(context.Background(), "https://hooks.other.test:"+port+"/", nil, nil)
	if res.Err == nil || res.Err.Error() != "TLS: certificate is not valid for hooks.other.test" {
		t.Fatalf("wrong name: %d %v", res.StatusCode, res.Err)
	}
	// Without the test's roots, the system roots do not know httptest's certificate.
	sys := newClient(t, ClientOptions{Policy: URLPolicy{AllowPrivate: true}, Lookup: lookup})
	res = sys.Post(context.Background(), "https://example.com:"+port+"/", nil, nil)
	if res.Err == nil || res.Err.Error() != "TLS: certificate signed by an unknown authority" {
		t.Fatalf("system roots: %v", res.Err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("server got %d requests, want 1", n)
	}
	if tlsConfig.ServerName != "" {
		t.Fatal("the test's TLS config names a server; the test would prove nothing")
	}
}

func TestPostPlainServerOverHTTPS(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := newClient(t, ClientOptions{Policy: URLPolicy{AllowPrivate: true}, TLSConfig: &tls.Config{}})
	res := c.Post(context.Background(), "https://127.0.0.1:"+s.port()+"/", nil, nil)
	if res.Err == nil || !strings.HasPrefix(res.Err.Error(), "TLS: ") {
		t.Fatalf("%v", res.Err)
	}
}

func TestPostConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, ClientOptions{Policy: devPolicy})
	res := c.Post(context.Background(), "http://"+addr+"/", nil, nil)
	if res.Err == nil || res.Err.Error() != "connection refused" {
		t.Fatalf("%v", res.Err)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&URLError{Msg: "must not contain credentials"}, "must not contain credentials"},
		{context.Canceled, "canceled"},
		{context.DeadlineExceeded, "timed out"},
		{&net.DNSError{Name: "x.test", Err: "no such host", IsNotFound: true}, "could not resolve the URL's host"},
		{&net.OpError{Op: "read", Err: errors.New("something odd")}, "something odd"},
		{io.ErrUnexpectedEOF, "connection closed by the server"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, "TLS: handshake failure"},
	} {
		if got := Describe(tc.err); got != tc.want {
			t.Errorf("Describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/keyplane/keyplane/internal/testkit"
)

// nginxConf is the configuration docs/forward-auth.md shows, with the test's addresses: every request
// to the upstream first asks keyplane, through auth_request, with the verify root key added by nginx.
// auth_request passes only 2xx, 401 and 403 on; the @keyplane_error location turns keyplane's 429
// (which nginx would make a 500) back into a 429.
const nginxConf = `
{{if .Root}}user root root;{{end}}
worker_processes 1;
daemon off;
pid {{.Dir}}/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  server {
    listen 127.0.0.1:{{.Port}};
    location / {
      auth_request /_keyplane;
      auth_request_set $keyplane_key $upstream_http_x_keyplane_key_id;
      auth_request_set $keyplane_workspace $upstream_http_x_keyplane_workspace_id;
      auth_request_set $keyplane_status $upstream_status;
      auth_request_set $keyplane_retry $upstream_http_retry_after;
      error_page 500 = @keyplane_error;
      proxy_set_header X-Keyplane-Key-Id $keyplane_key;
      proxy_set_header X-Keyplane-Workspace-Id $keyplane_workspace;
      proxy_pass http://{{.Upstream}};
    }
    location = /_keyplane {
      internal;
      proxy_pass http://{{.Keyplane}}/v1/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Keyplane-Root-Key "{{.RootKey}}";
      proxy_set_header X-Required-Permissions "orders:read";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location @keyplane_error {
      if ($keyplane_status = 429) {
        add_header Retry-After $keyplane_retry always;
        return 429;
      }
      return 500;
    }
  }
}
`

// TestNginxAuthRequest runs Debian's nginx in front of a tiny upstream, with keyplane as its
// auth_request: good keys reach the upstream with their id, bad ones get 401, keys without the
// permission 403, keys over their limit 429. It skips only where nginx is not installed, unless
// KEYPLANE_REQUIRE_NGINX is set (CI sets it and installs nginx).
func TestNginxAuthRequest(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			testkit.Require(t, "NGINX", "nginx is not installed (apt-get install nginx-light)")
		}
	}
	n := start(t, "sqlite", map[string]string{"KEYPLANE_CONFIG": "../../examples/keyplane.json", "KEYPLANE_TRUSTED_PROXIES": "127.0.0.1/32"})
	ws := n.workspace("nginx", nil)
	reader := n.key(ws, map[string]any{"name": "reader", "keyType": "secret", "permissions": []string{"orders:read"},
		"rateLimit": map[string]any{"limit": 3, "windowMs": 60000}})
	writer := n.key(ws, map[string]any{"name": "writer", "keyType": "secret", "permissions": []string{"orders:write"}})

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.Header.Get("X-Keyplane-Key-Id"), r.Header.Get("X-Keyplane-Workspace-Id"))
	}))
	defer upstream.Close()

	port := freePort(t)
	dir := t.TempDir()
	var conf strings.Builder
	template.Must(template.New("").Parse(nginxConf)).Execute(&conf, map[string]any{
		"Dir": dir, "Port": port, "Upstream": strings.TrimPrefix(upstream.URL, "http://"),
		"Keyplane": strings.TrimPrefix(n.url, "http://"), "RootKey": n.verifier, "Root": os.Geteuid() == 0,
	})
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// nginx's output goes to a file, not a pipe: its workers inherit the descriptor, and a pipe would
	// keep Wait waiting for them.
	logPath := filepath.Join(dir, "error.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", logPath)
	cmd.Stderr, cmd.Stdout = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // master and workers in a group of their own
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	stderr := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if !testkit.Wait(10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nginx did not listen: %s", stderr())
	}

	get := func(key string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/orders/42", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	status, body, _ := get(reader["keyValue"].(string))
	if want := fmt.Sprintf("hello %s from %s", reader["id"], ws); status != 200 || body != want {
		t.Fatalf("a good key through nginx: %d %q, want 200 %q\n%s", status, body, want, stderr())
	}
	for _, c := range []struct {
		name, key string
		status    int
	}{
		{"no key", "", 401},
		{"an unknown key", "kp_sk_live_00000000000000000000000000000000000000", 401},
		{"a key without orders:read", writer["keyValue"].(string), 403},
	} {
		if status, body, _ := get(c.key); status != c.status || strings.Contains(body, "hello") {
			t.Errorf("%s through nginx: %d %q, want %d and no upstream", c.name, status, body, c.status)
		}
	}
	get(reader["keyValue"].(string))
	get(reader["keyValue"].(string))
	if status, body, h := get(reader["keyValue"].(string)); status != 429 || h.Get("Retry-After") == "" || strings.Contains(body, "hello") {
		t.Errorf("over the limit through nginx: %d (Retry-After %q) %q, want 429", status, h.Get("Retry-After"), body)
	}
}

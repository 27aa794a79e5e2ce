package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/internal/keyformat"
)

func TestCommands(t *testing.T) {
	eachDriver(t, func(t *testing.T, driver string) {
		dir, db := config(t, driver)
		out, err := run(t, dir, db, "", "root-keys", "create", "--name", "ops", "--scopes", "admin,verify")
		if err != nil {
			t.Fatalf("root-keys create: %v %s", err, out)
		}
		key := strings.TrimSuffix(out, "\n")
		if k, err := keyformat.Parse("kp", key); err != nil || !k.Root || strings.Contains(key, "\n") {
			t.Fatalf("root-keys create printed %q, want the key alone", out)
		}
		if _, err := run(t, dir, db, "", "root-keys", "create", "--name", "x", "--scopes", "superuser"); err == nil {
			t.Error("an unknown scope was accepted")
		}
		if _, err := run(t, dir, db, "", "root-keys", "create", "--scopes", "admin"); err == nil {
			t.Error("a root key without a name was accepted")
		}
		ws, err := run(t, dir, db, "", "workspaces", "create", "--name", "Acme", "--slug", "acme")
		if err != nil || !strings.HasPrefix(ws, "ws_") {
			t.Fatalf("workspaces create: %v %q", err, ws)
		}
		if _, err := run(t, dir, db, "", "workspaces", "create", "--name", "Acme", "--slug", "acme"); err == nil || !strings.Contains(err.Error(), "slug is already used") {
			t.Errorf("duplicate slug: %v", err)
		}
		if _, err := run(t, dir, db, "a long enough password\n", "users", "create", "--email", "ana@example.com", "--role", "admin", "--workspace", "acme"); err != nil {
			t.Fatalf("users create: %v", err)
		}
		if _, err := run(t, dir, db, "another long password\n", "users", "create", "--email", "ops@example.com", "--operator"); err != nil {
			t.Fatalf("users create --operator: %v", err)
		}
		if _, err := run(t, dir, db, "short\n", "users", "create", "--email", "bo@example.com", "--operator"); err == nil {
			t.Error("a short password was accepted")
		}
		if _, err := run(t, dir, db, "a long enough password\n", "users", "create", "--email", "bo@example.com", "--role", "admin", "--workspace", "nope"); err == nil {
			t.Error("an unknown workspace was accepted")
		}
		if out, err := run(t, dir, db, "", "migrate"); err != nil || !strings.Contains(out, driver) {
			t.Errorf("migrate: %v %q", err, out)
		}
		out, err = run(t, dir, db, "", "audit", "verify")
		if err != nil || !strings.Contains(out, "ok    operator") || !strings.Contains(out, "chains verify") {
			t.Errorf("audit verify: %v\n%s", err, out)
		}
		if out, err := run(t, dir, db, "", "version"); err != nil || !strings.HasPrefix(out, "keyplane ") {
			t.Errorf("version: %v %q", err, out)
		}
		if _, err := run(t, dir, db, "", "frobnicate"); err == nil {
			t.Error("an unknown command succeeded")
		}
		if _, err := run(t, dir, db, "", "serve", "--key-prefix", "Bad!"); err == nil {
			t.Error("a bad key prefix was accepted")
		}
	})
}

// TestSIGTERM runs the real binary: a request in flight when SIGTERM arrives is answered, and the
// process exits 0.
func TestSIGTERM(t *testing.T) {
	bin, dir, lc := binaryOnEmptyDir(t)
	rootOut, err := exec.Command(bin, "root-keys", "create", "--data-dir", dir, "--name", "v", "--scopes", "verify").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(rootOut))
	lc.secret("root key printed by keyplane root-keys create", root)
	cmd, addr, stderr := serveBinary(t, lc, bin, dir)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"key":"kp_sk_live_` + strings.Repeat("a", 38) + `"}`
	// Expect: 100-continue makes the server say when its handler starts reading the body: from then
	// on the request is in flight, whatever the machine's load.
	fmt.Fprintf(conn, "POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", root, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line that ends the interim answer
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		t.Fatalf("exited with a request in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(br)
	if !strings.HasPrefix(string(reply), "HTTP/1.1 200") || !strings.Contains(string(reply), `"NOT_FOUND"`) {
		t.Fatalf("in-flight request answered:\n%s", reply)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("did not exit after SIGTERM")
	}
	if strings.Contains(stderr.String(), root) {
		t.Fatal("the root key appears in the server's log")
	}
}

// binaryOnEmptyDir builds the binary (skipping in -short) and returns it with an empty data dir,
// under the leak check.
func binaryOnEmptyDir(t *testing.T) (string, string, *leakChecker) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := keyplaneBinary(t)
	dir := t.TempDir()
	lc := leaks(t)
	lc.Store(dir, "")
	return bin, dir, lc
}

// serveBinary starts the built binary's serve on dir, on a free loopback port, with an admin password
// and its output under the leak check, and returns the process, once it prints its address, and its
// stderr. The test ends it; cleanup kills it if the test did not. env adds KEY=value settings.
func serveBinary(t *testing.T, lc *leakChecker, bin, dir string, env ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	const password = "correct horse battery staple"
	lc.secret("KEYPLANE_ADMIN_PASSWORD", password)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--addr", "127.0.0.1:0")
	cmd.Env = append(append(os.Environ(), "KEYPLANE_ADMIN_PASSWORD="+password), env...)
	stdout, _ := cmd.StdoutPipe()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdoutCopy := &syncBuffer{}
	lc.Output("keyplane serve's stderr", stderr)
	lc.Output("keyplane serve's stdout", stdoutCopy)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`listening on http://(\S+)`)
		for sc.Scan() {
			fmt.Fprintln(stdoutCopy, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case addr := <-addrc:
		return cmd, addr, stderr
	case <-time.After(60 * time.Second):
		t.Fatalf("no address printed; stderr:\n%s", stderr.String())
		return nil, "", nil
	}
}

package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ensure secrets given as files reach the backend as the right
// Authorization header for each sink, extra headers and the Loki tenant
// are sent, and no secret ever appears in tailcar's logs, even at debug
// level while the backend fails.
func TestRun_SecretsFromFilesAreSentNeverLogged(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, value string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		secrets []string
		header  string
		want    string
	}{
		{"basic", map[string]string{"TAILCAR_SINK": "http", "TAILCAR_SINK_USER": "shipper",
			"TAILCAR_SINK_PASSWORD_FILE": secret("password", "pa55-w0rd-secret")},
			[]string{"pa55-w0rd-secret", "c2hpcHBlcjpwYTU1LXcwcmQtc2VjcmV0"}, "Authorization", "Basic c2hpcHBlcjpwYTU1LXcwcmQtc2VjcmV0"},
		{"bearer", map[string]string{"TAILCAR_SINK": "loki", "TAILCAR_LOKI_TENANT": "shop",
			"TAILCAR_SINK_TOKEN_FILE": secret("token", "tok-123-secret")},
			[]string{"tok-123-secret"}, "Authorization", "Bearer tok-123-secret"},
		{"api key", map[string]string{"TAILCAR_SINK": "elasticsearch",
			"TAILCAR_ES_API_KEY_FILE": secret("apikey", "a2V5LXNlY3JldA==")},
			[]string{"a2V5LXNlY3JldA=="}, "Authorization", "ApiKey a2V5LXNlY3JldA=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var headers []http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				headers = append(headers, r.Header.Clone())
				first := len(headers) == 1
				mu.Unlock()
				if first {
					http.Error(w, "try again", http.StatusServiceUnavailable)
					return
				}
				if strings.HasSuffix(r.URL.Path, "/_bulk") {
					w.Write([]byte(`{"errors":false,"items":[]}`))
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			log := filepath.Join(t.TempDir(), "app.log")
			appendLines(t, log, 1, 10)
			env := withEnv(tc.env, map[string]string{
				"TAILCAR_PATHS": log, "TAILCAR_SINK_URL": srv.URL, "TAILCAR_SINK_HEADERS": "X-Team=shop,X-Env=prod",
				"TAILCAR_LOG_LEVEL": "debug", "TAILCAR_DRAIN_DELAY": "0s", "TAILCAR_BATCH_WAIT": "50ms",
			})
			p := startTailcar(t, env)
			waitFor(t, 20*time.Second, "a delivered batch", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(headers) >= 2
			})
			p.signal(syscall.SIGTERM)
			if code := p.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			h := headers[1]
			if got := h.Get(tc.header); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.header, got, tc.want)
			}
			if h.Get("X-Team") != "shop" || h.Get("X-Env") != "prod" {
				t.Errorf("extra headers missing: %v", h)
			}
			if tc.env["TAILCAR_SINK"] == "loki" && h.Get("X-Scope-OrgID") != "shop" {
				t.Errorf("X-Scope-OrgID = %q", h.Get("X-Scope-OrgID"))
			}
			stderr := p.stderrText()
			if !strings.Contains(stderr, "send failed") {
				t.Fatal("the failing attempt was not logged; the check below would prove nothing")
			}
			for _, s := range tc.secrets {
				if strings.Contains(stderr, s) {
					t.Errorf("secret %q appears in tailcar's logs", s)
				}
			}
		})
	}
}

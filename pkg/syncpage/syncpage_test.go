package syncpage

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// answer is what the handler wrote.
type answer struct {
	StatusCode int
	Header     http.Header
}

func get(t *testing.T, h http.Handler, path string, header ...string) (answer, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{StatusCode: rec.Code, Header: rec.Header()}, rec.Body.String()
}

// TestSecurityHeaders: every answer, the page, its files and a miss, carries the
// strict CSP and its companions.
func TestSecurityHeaders(t *testing.T) {
	h := Handler(Options{})
	for _, path := range []string{"/", "/assets/app.js", "/assets/style.css", "/nothing", "/v1/providers"} {
		resp, _ := get(t, h, path)
		for name, want := range map[string]string{
			"Content-Security-Policy": csp,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, name, got, want)
			}
		}
	}
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("the CSP allows more than the page's own scripts: %s", csp)
	}
}

// TestFiles: the page and its files are embedded and served with their types; the
// API's paths are not the page's.
func TestFiles(t *testing.T) {
	h := Handler(Options{})
	for path, want := range map[string]string{
		"/":                 "text/html; charset=utf-8",
		"/assets/app.js":    "text/javascript; charset=utf-8",
		"/assets/style.css": "text/css; charset=utf-8",
	} {
		resp, body := get(t, h, path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want || len(body) < 100 {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
	}
	for _, path := range []string{"/v1/providers", "/v1/openapi.json", "/index.html", "/assets/", "/static/index.html"} {
		if resp, _ := get(t, h, path); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestLanguage: ?lang= wins, then Accept-Language, then English.
func TestLanguage(t *testing.T) {
	h := Handler(Options{})
	for _, tc := range []struct{ path, accept, want string }{
		{"/", "fr-FR,fr;q=0.9,en;q=0.5", "fr"},
		{"/", "pl", "pl"},
		{"/", "de-DE,pl;q=0.3", "pl"},
		{"/", "de-DE", "en"},
		{"/", "", "en"},
		{"/?lang=pl", "fr", "pl"},
		{"/?lang=xx", "fr", "fr"},
	} {
		resp, body := get(t, h, tc.path, "Accept-Language", tc.accept)
		if !strings.Contains(body, `<html lang="`+tc.want+`">`) || resp.Header.Get("Content-Language") != tc.want {
			t.Errorf("GET %s with Accept-Language %q: not in %q", tc.path, tc.accept, tc.want)
		}
		if !strings.Contains(body, messages[tc.want]["title"]) {
			t.Errorf("GET %s with Accept-Language %q: the title is not the %s one", tc.path, tc.accept, tc.want)
		}
	}
}

// TestMessages: every language says everything English says, with the same {values}.
func TestMessages(t *testing.T) {
	ph := regexp.MustCompile(`\{\w+\}`)
	for _, lang := range Languages {
		for key, en := range messages["en"] {
			got, ok := messages[lang][key]
			if !ok || got == "" {
				t.Errorf("%s: no %q", lang, key)
				continue
			}
			want, have := ph.FindAllString(en, -1), ph.FindAllString(got, -1)
			slices.Sort(want)
			slices.Sort(have)
			if !slices.Equal(want, have) {
				t.Errorf("%s.%s = %q: values %v, want %v", lang, key, got, have, want)
			}
		}
		if len(messages[lang]) != len(messages["en"]) {
			t.Errorf("%s has %d messages, English %d", lang, len(messages[lang]), len(messages["en"]))
		}
	}
}

// TestPageMarkup: no inline script or style and no event attribute (the CSP would
// block them anyway: this keeps the page working under it), every field labelled,
// passwords never offered to the browser's storage, the private page asks for a
// token and the public one does not.
func TestPageMarkup(t *testing.T) {
	_, public := get(t, Handler(Options{Mode: Public}), "/")
	_, private := get(t, Handler(Options{Mode: Private}), "/")
	for name, body := range map[string]string{"public": public, "private": private} {
		for _, m := range regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`).FindAllStringSubmatch(body, -1) {
			if strings.TrimSpace(m[2]) != "" && !strings.Contains(m[1], `type="application/json"`) {
				t.Errorf("%s: an inline script: %.80s", name, m[0])
			}
		}
		if regexp.MustCompile(`(?i)\sstyle=|\son[a-z]+=|javascript:`).MatchString(body) {
			t.Errorf("%s: an inline style, event attribute or javascript: URL", name)
		}
		for _, id := range regexp.MustCompile(`<(?:input|select)[^>]*\sid="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if !strings.Contains(body, `<label for="`+id[1]+`">`) {
				t.Errorf("%s: field %s has no label", name, id[1])
			}
		}
		for _, pw := range regexp.MustCompile(`<input[^>]*type="password"[^>]*>`).FindAllString(body, -1) {
			if !strings.Contains(pw, `autocomplete="new-password"`) && !strings.Contains(pw, `autocomplete="off"`) {
				t.Errorf("%s: a password field the browser may fill and keep: %s", name, pw)
			}
		}
	}
	if strings.Contains(public, `id="token"`) || !strings.Contains(private, `id="token"`) {
		t.Errorf("the token field: in the public page %v, in the private one %v; want only in the private one",
			strings.Contains(public, `id="token"`), strings.Contains(private, `id="token"`))
	}
	_, js := get(t, Handler(Options{}), "/assets/app.js")
	for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

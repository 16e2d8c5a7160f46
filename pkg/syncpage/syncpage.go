// Package syncpage is the customer's page: the seed's flow in a browser (pick the old
// provider, type the login and password, test the connection; the same for the new
// mailbox; Synchronize; follow the status by the old address), on top of the JSON/HTTP
// API that syncapi serves under /v1/ on the same origin.
//
// Everything is embedded in the binary (no CDN, no font, nothing fetched at run time)
// and served under a strict Content-Security-Policy: no inline script or style, no
// other origin, no framing. The page speaks English, French and Polish, chosen from
// ?lang= or Accept-Language, rendered on the server (the template) and, for what
// app.js writes, from the same messages handed over as a JSON data block. Passwords
// and the API token live in the page's memory only: never in storage, cookies or URLs.
package syncpage

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

//go:embed static
var static embed.FS

// Mode is who the page is for.
type Mode string

const (
	// Public: anyone may use the page without logging in (the seed's page).
	Public Mode = "public"
	// Private: the operator's staff; the page asks for an API token and sends it.
	Private Mode = "private"
)

// Options configure the page.
type Options struct {
	Mode Mode // Public when empty
}

// Languages the page speaks, the first one the default.
var Languages = []string{"en", "fr", "pl"}

var matcher = language.NewMatcher([]language.Tag{language.English, language.French, language.Polish})

// csp allows the page's own files and calls only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the page at / and its files under /assets/. It serves nothing else
// (a 404 for any other path): the caller routes /v1/ to the API.
func Handler(opts Options) http.Handler {
	if opts.Mode == "" {
		opts.Mode = Public
	}
	page := template.Must(template.New("index.html").Funcs(template.FuncMap{
		"t": func(lang, key string) string { return messages[lang][key] },
	}).ParseFS(static, "static/index.html"))
	assets, err := fs.Sub(static, "static/assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(assets))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		lang := pickLanguage(r)
		var body bytes.Buffer
		if err := page.Execute(&body, view(lang, opts.Mode)); err != nil {
			http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Language", lang)
		w.Header().Add("Vary", "Accept-Language")
		_, _ = w.Write(body.Bytes())
	})
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listing
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		mux.ServeHTTP(w, r)
	})
}

// pickLanguage is ?lang= when the page speaks it, else the best match of
// Accept-Language, else English.
func pickLanguage(r *http.Request) string {
	if l := strings.ToLower(r.URL.Query().Get("lang")); messages[l] != nil {
		return l
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return Languages[0]
	}
	return Languages[i]
}

type link struct {
	Lang, Name string
	Current    bool
}

// accountView is one account's form (the template "account").
type accountView struct {
	Lang, Side, Role, Heading string
}

type pageView struct {
	Source, Destination accountView

	Lang     string
	Mode     Mode
	Private  bool
	Messages template.JS // JSON of the language's messages, for app.js (a data block, not a script)
	Links    []link
}

func view(lang string, mode Mode) pageView {
	// A map of strings: Marshal cannot fail.
	m, _ := json.Marshal(messages[lang])
	v := pageView{Lang: lang, Mode: mode, Private: mode == Private, Messages: template.JS(m), //nolint:gosec // G203: json.Marshal of our own messages, which escapes <, > and &
		Source:      accountView{Lang: lang, Side: "source", Role: "ACCOUNT_ROLE_SOURCE", Heading: "source_heading"},
		Destination: accountView{Lang: lang, Side: "destination", Role: "ACCOUNT_ROLE_DESTINATION", Heading: "destination_heading"},
	}
	for _, l := range Languages {
		v.Links = append(v.Links, link{Lang: l, Name: languageNames[l], Current: l == lang})
	}
	return v
}

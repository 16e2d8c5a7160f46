package imaptest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// introspector is the OAuth2 token introspection endpoint (RFC 7662) that Dovecot's
// oauth2 passdb asks. It listens on loopback and knows the tokens issued by the test.
type introspector struct {
	srv *http.Server
	url string

	mu     sync.Mutex
	tokens map[string]string // token -> login
}

func newIntrospector() (*introspector, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oauth2 introspection listener: %w", err)
	}
	in := &introspector{url: "http://" + l.Addr().String() + "/introspect", tokens: map[string]string{}}
	in.srv = &http.Server{Handler: http.HandlerFunc(in.serveHTTP)}
	go in.srv.Serve(l)
	return in, nil
}

func (in *introspector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.FormValue("token")
	in.mu.Lock()
	login, ok := in.tokens[token]
	in.mu.Unlock()
	resp := map[string]any{"active": false}
	if ok && token != "" {
		resp = map[string]any{"active": true, "username": login}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (in *introspector) issue(login string) string {
	token := "imaptest-" + randomHex(16)
	in.mu.Lock()
	in.tokens[token] = login
	in.mu.Unlock()
	return token
}

func (in *introspector) dovecotConfig() string {
	return "introspection_mode = post\n" +
		"introspection_url = " + in.url + "\n" +
		"username_attribute = username\n" +
		"active_attribute = active\n" +
		"active_value = true\n"
}

func (in *introspector) Close() error {
	return in.srv.Close()
}

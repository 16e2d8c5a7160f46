package batchstart

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Columns are the columns a batch file may have, in any order, named by its header
// row. Each account needs its login and its password or OAuth2 access token; the
// provider is a preset id of ListProviders, or empty with a host ("other").
var Columns = []string{
	"source_login", "source_password", "source_oauth2_token",
	"source_provider", "source_host", "source_port", "source_security",
	"destination_login", "destination_password", "destination_oauth2_token",
	"destination_provider", "destination_host", "destination_port", "destination_security",
	"language",
}

// Row is one line of a batch file: one sync to start.
type Row struct {
	Line    int // in the file, for messages (the header is line 1)
	Request *imapcopyv1.StartSyncRequest
}

// Source is the row's source login as typed (never a secret).
func (r Row) Source() string { return r.Request.GetSource().GetLogin() }

// ReadRows reads a batch file: a header row naming columns of Columns, then one row
// per sync. Empty lines and lines starting with # are skipped. Errors name the line
// and the column, never a value: a value may be a password.
func ReadRows(in io.Reader) ([]Row, error) {
	r := csv.NewReader(in)
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: the first line names the columns (" + strings.Join(Columns, ",") + ")")
	}
	if err != nil {
		return nil, readError(err)
	}
	index := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(Columns, name) {
			return nil, fmt.Errorf("line 1: unknown column %q: the columns are %s", name, strings.Join(Columns, ","))
		}
		if _, dup := index[name]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", name)
		}
		index[name] = i
	}
	for _, need := range []string{"source_login", "destination_login"} {
		if _, ok := index[need]; !ok {
			return nil, fmt.Errorf("line 1: no %s column", need)
		}
	}
	var rows []Row
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, readError(err)
		}
		line, _ := r.FieldPos(0)
		get := func(col string) string {
			if i, ok := index[col]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("line %d: %d fields, the header has %d", line, len(rec), len(header))
		}
		src, err := account(get, "source", line)
		if err != nil {
			return nil, err
		}
		dst, err := account(get, "destination", line)
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(src.GetLogin())
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("line %d: source_login is the same as on line %d: one sync per source", line, prev)
		}
		seen[key] = line
		req := &imapcopyv1.StartSyncRequest{Source: src, Destination: dst}
		if lang := get("language"); lang != "" {
			req.Options = &imapcopyv1.SyncOptions{Language: lang}
		}
		rows = append(rows, Row{Line: line, Request: req})
	}
}

// readError is a CSV error without the text of the line.
func readError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return err
}

// account reads the columns of one role (prefix "source" or "destination").
func account(get func(string) string, prefix string, line int) (*imapcopyv1.Account, error) {
	col := func(name string) string { return prefix + "_" + name }
	a := &imapcopyv1.Account{
		Login:             get(col("login")),
		Password:          get(col("password")),
		Oauth2AccessToken: get(col("oauth2_token")),
		Provider:          strings.ToLower(get(col("provider"))),
		Host:              get(col("host")),
	}
	if a.Login == "" {
		return nil, fmt.Errorf("line %d: %s is empty", line, col("login"))
	}
	if a.Password == "" && a.Oauth2AccessToken == "" {
		return nil, fmt.Errorf("line %d: %s and %s are both empty: give one", line, col("password"), col("oauth2_token"))
	}
	if a.Provider == "" {
		if a.Host == "" {
			return nil, fmt.Errorf("line %d: %s and %s are both empty: give a preset id (ListProviders) or the IMAP server", line, col("provider"), col("host"))
		}
		a.Provider = "other"
	}
	if p := get(col("port")); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("line %d: %s is not a port number (1-65535)", line, col("port"))
		}
		a.Port = uint32(n)
	}
	switch strings.ToLower(get(col("security"))) {
	case "":
	case "tls", "ssl":
		a.Security = imapcopyv1.Security_SECURITY_TLS
	case "starttls":
		a.Security = imapcopyv1.Security_SECURITY_STARTTLS
	default:
		return nil, fmt.Errorf("line %d: %s: use tls or starttls (or leave it empty for the preset's)", line, col("security"))
	}
	return a, nil
}

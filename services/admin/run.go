package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"imapcopy.dev/pkg/batchstart"
	"imapcopy.dev/pkg/envflag"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const usage = `usage: imapcopy-admin start [flags] FILE

Starts the syncs of FILE (with -dry-run: asks the pre-flight verdict of each, starting
nothing), a CSV file whose first line names its columns:
  %s
one sync per line (source_login, destination_login, and a password or token for each
account are required; the provider is a preset id of ListProviders, or leave it empty
and give the host). Each row is one StartSync: rows whose source already has a sync
(queued, running, or ended, FAILED included: retry those with RetrySync) are skipped,
so running the same file again starts only what was not started. Rows are started a
source server at a time, -per-host apart. One result per row goes to the standard
output as CSV (line,source,outcome,task_id,detail); no password is ever printed.

flags:
`

// config is the command's configuration.
type config struct {
	API         string
	TLS         bool
	CAFile      string
	TokenFile   string
	Token       string // IMAPCOPY_API_TOKEN (environment only: a flag would show in ps)
	PerHost     time.Duration
	Concurrency int
	DryRun      bool
	File        string
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	if len(args) == 0 || args[0] != "start" {
		fmt.Fprintf(stderr, usage, strings.Join(batchstart.Columns, ","))
		return nil, errors.New(`the command is "start": imapcopy-admin start FILE`)
	}
	c := &config{Token: getenv("IMAPCOPY_API_TOKEN")}
	fs := flag.NewFlagSet("imapcopy-admin start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, strings.Join(batchstart.Columns, ","))
		fs.PrintDefaults()
	}
	e := envflag.New(fs, getenv)
	e.String(&c.API, "api", "IMAPCOPY_API_ADDR", "127.0.0.1:50051", "the api's gRPC address")
	e.Bool(&c.TLS, "tls", "IMAPCOPY_API_TLS", false, "connect with TLS, verifying the api's certificate with the system's roots (or -ca-file)")
	e.String(&c.CAFile, "ca-file", "IMAPCOPY_API_CA_FILE", "", "PEM file of the CA of the api's certificate (implies -tls)")
	e.String(&c.TokenFile, "token-file", "IMAPCOPY_API_TOKEN_FILE", "", "file holding the API token to send (or IMAPCOPY_API_TOKEN in the environment)")
	e.Duration(&c.PerHost, "per-host", "IMAPCOPY_BATCH_PER_HOST", 2*time.Second, "least time between two starts on one source server")
	e.Int(&c.Concurrency, "concurrency", "IMAPCOPY_BATCH_CONCURRENCY", 4, "calls to the api in flight")
	fs.BoolVar(&c.DryRun, "dry-run", false, "start nothing: ask the pre-flight verdict (PlanSync) of every row instead")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if err := e.Err(); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		return nil, errors.New("give one batch file: imapcopy-admin start FILE")
	}
	c.File = fs.Arg(0)
	c.TLS = c.TLS || c.CAFile != ""
	if !c.TLS && !loopback(c.API) {
		return nil, fmt.Errorf("-api %s is not a loopback address: the batch's passwords would cross the network in clear; use -tls (and -ca-file)", c.API)
	}
	if c.Concurrency < 1 || c.PerHost < 0 {
		return nil, errors.New("-concurrency must be at least 1 and -per-host not negative")
	}
	return c, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// dial connects to the api, sending the token with every call.
func (c *config) dial() (*grpc.ClientConn, error) {
	token := c.Token
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	creds := insecure.NewCredentials()
	if c.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("-ca-file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca-file %s: no PEM certificate in it", c.CAFile)
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	withToken := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	return grpc.NewClient(c.API, grpc.WithTransportCredentials(creds), grpc.WithUnaryInterceptor(withToken))
}

// errRows is the exit status of a batch in which some rows were not started.
type errRows struct{ refused, failed int }

func (e errRows) Error() string {
	return fmt.Sprintf("%d rows refused or blocked and %d in error: see their results", e.refused, e.failed)
}

func (e errRows) ExitCode() int { return 2 }

// run reads the batch file, starts its rows and prints their results.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	f, err := os.Open(cfg.File)
	if err != nil {
		return err
	}
	rows, err := batchstart.ReadRows(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.File, err)
	}
	conn, err := cfg.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	out := csv.NewWriter(stdout)
	// A csv.Writer keeps its first error: out.Error() below reports it.
	_ = out.Write([]string{"line", "source", "outcome", "task_id", "detail"})
	counts := map[batchstart.Outcome]int{}
	batchstart.Run(ctx, imapcopyv1.NewSyncServiceClient(conn), rows,
		batchstart.Options{PerHost: cfg.PerHost, Concurrency: cfg.Concurrency, DryRun: cfg.DryRun},
		func(r batchstart.Result) {
			counts[r.Outcome]++
			_ = out.Write([]string{strconv.Itoa(r.Line), r.Source, string(r.Outcome), r.TaskID, r.Detail})
			out.Flush()
		})
	out.Flush()
	if cfg.DryRun {
		fmt.Fprintf(stderr, "%d rows (dry run): %d would start, %d blocked, %d skipped, %d refused, %d errors\n", len(rows),
			counts[batchstart.Planned], counts[batchstart.Blocked], counts[batchstart.Skipped], counts[batchstart.Refused], counts[batchstart.Failed])
	} else {
		fmt.Fprintf(stderr, "%d rows: %d started, %d skipped, %d refused, %d errors\n", len(rows),
			counts[batchstart.Started], counts[batchstart.Skipped], counts[batchstart.Refused], counts[batchstart.Failed])
	}
	if err := out.Error(); err != nil {
		return err
	}
	if counts[batchstart.Refused]+counts[batchstart.Blocked]+counts[batchstart.Failed] > 0 {
		return errRows{counts[batchstart.Refused] + counts[batchstart.Blocked], counts[batchstart.Failed]}
	}
	return ctx.Err()
}

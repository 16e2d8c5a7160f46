package syncapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, "redis")
	addr := e.conn.Target()
	for _, tt := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"wrong token", "test-token-0123456789abcdeX", codes.Unauthenticated},
		{"right token", testToken, codes.OK},
	} {
		client := imapcopyv1.NewSyncServiceClient(dial(t, addr, tt.token))
		_, err := client.ListProviders(e.ctx(), &imapcopyv1.ListProvidersRequest{})
		if status.Code(err) != tt.want {
			t.Errorf("%s: ListProviders = %v, want %v", tt.name, err, tt.want)
		}
		stream, err := client.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: "nobody@example.test"})
		if err == nil {
			_, err = stream.Recv()
		}
		want := tt.want
		if want == codes.OK {
			want = codes.NotFound
		}
		if status.Code(err) != want {
			t.Errorf("%s: WatchSyncStatus = %v, want %v", tt.name, err, want)
		}
	}

	// Health is open to anyone.
	health := healthpb.NewHealthClient(dial(t, addr, ""))
	for _, service := range []string{"", "imapcopy.v1.SyncService"} {
		resp, err := health.Check(e.ctx(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health Check(%q) without a token = %v, %v, want SERVING", service, resp, err)
		}
	}
}

// listServices asks the reflection service for the services, as grpcurl list does.
func listServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// On io.EOF from Send, the stream's status comes from Recv.
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	stream.CloseSend()
	return names, nil
}

func TestReflection(t *testing.T) {
	e := newEnv(t, "redis")
	names, err := listServices(e.ctx(), e.conn)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	for _, want := range []string{"imapcopy.v1.SyncService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want %s among them", names, want)
		}
	}
	if _, err := listServices(e.ctx(), dial(t, e.conn.Target(), "")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without a token = %v, want Unauthenticated", err)
	}

	closed := newEnv(t, "redis", func(c *envConfig) { c.reflection = false })
	if _, err := listServices(closed.ctx(), closed.conn); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection when closed = %v, want Unimplemented", err)
	}
}

func TestRateLimits(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, "redis",
		withOptions(func(o *syncapi.Options) {
			o.PerAddress = syncapi.Rate{Every: time.Minute, Burst: 2}
			o.PerCaller = syncapi.Rate{Every: time.Second, Burst: 5}
		}),
		withDeps(func(d *syncapi.Deps) { d.Clock = clock }),
	)
	u := newUser(t)
	test := func(acct *imapcopyv1.Account) error {
		_, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
		return err
	}
	for i := range 2 {
		if err := test(u.withPassword("guess")); err != nil {
			t.Fatalf("test #%d: %v", i+1, err)
		}
	}
	err := test(u.withPassword("guess"))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "too many attempts for this account: retry in") {
		t.Fatalf("third test of one address = %v, want ResourceExhausted with a retry hint", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("details = %v, want a RetryInfo with a delay", st.Details())
	}
	// The address spelled otherwise is the same address.
	other := u.proto()
	other.Login = strings.ToUpper(u.email)
	if err := test(other); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("test of the address in capitals = %v, want ResourceExhausted", err)
	}
	// Another address is not limited by the first; the caller's own limit (5 at once)
	// is reached after it.
	v := newUser(t)
	if err := test(v.proto()); err != nil {
		t.Errorf("test of another address: %v", err)
	}
	if err := test(v.proto()); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many requests from this caller") {
		t.Errorf("sixth call of the caller = %v, want ResourceExhausted for the caller", err)
	}
	// Time heals.
	clock.Advance(time.Minute)
	if err := test(u.proto()); err != nil {
		t.Errorf("test a minute later: %v", err)
	}
	// Starts count too.
	clock.Advance(time.Hour)
	w := newUser(t)
	for range 2 {
		_, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: u.withPassword("guess"), Destination: w.proto()})
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("StartSync with a wrong password = %v, want FailedPrecondition", err)
		}
	}
	_, err = e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: u.withPassword("guess"), Destination: w.proto()})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third StartSync for one source = %v, want ResourceExhausted", err)
	}
}

// blockingProber holds every probe until released, to fill the test slots.
type blockingProber struct {
	started chan struct{}
	release chan struct{}
}

func (p *blockingProber) Probe(ctx context.Context, _ imapconn.Account, _ imapcopyv1.AccountRole, _ bool) *imapcopyv1.TestAccountResponse {
	p.started <- struct{}{}
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	return &imapcopyv1.TestAccountResponse{Ok: true, Message: "login succeeded"}
}

func TestConcurrentTestsBounded(t *testing.T) {
	prober := &blockingProber{started: make(chan struct{}, 10), release: make(chan struct{})}
	e := newEnv(t, "redis",
		withOptions(func(o *syncapi.Options) { o.MaxConcurrentTests = 1; o.TestQueueWait = time.Millisecond }),
		withDeps(func(d *syncapi.Deps) { d.Prober = prober }),
	)
	u := newUser(t)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.proto()})
		done <- err
	}()
	<-prober.started // the one slot is taken
	_, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: newUser(t).proto()})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many account tests in progress") {
		t.Errorf("TestAccount while the slot is taken = %v, want ResourceExhausted", err)
	}
	close(prober.release)
	if err := <-done; err != nil {
		t.Errorf("first TestAccount: %v", err)
	}
}

// recordingDialer never connects: it records the addresses it was asked for and
// fails, so that a test of the network policy sends no packet anywhere.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
}

func (d *recordingDialer) DialContext(_ context.Context, _, address string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = append(d.addrs, address)
	return nil, errors.New("recording dialer: not connecting")
}

func (d *recordingDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.addrs)
}

// fakeResolver answers loopback.example with 127.0.0.1 and counts lookups.
type fakeResolver struct{ lookups atomic.Int64 }

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	if host == "loopback.example" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestNetworkPolicy checks the policy through the API: refused hosts are answered
// REFUSED_BY_POLICY without any dial, allow-listed ones are dialled. The dialer never
// connects and the resolver is fake: no packet leaves, even if the policy were broken.
func TestNetworkPolicy(t *testing.T) {
	hosts := []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "loopback.example"}
	for _, allowed := range []bool{false, true} {
		name := "refused"
		var allow []string
		if allowed {
			name = "allowed"
			allow = []string{"127.0.0.0/8", "10.0.0.0/8", "169.254.169.254", "::1", "loopback.example"}
		}
		t.Run(name, func(t *testing.T) {
			policy, err := netpolicy.New(netpolicy.Config{Allow: allow})
			if err != nil {
				t.Fatal(err)
			}
			dialer := &recordingDialer{}
			resolver := &fakeResolver{}
			pd := policy.Dialer(dialer, resolver)
			e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) {
				d.Policy = pd
				d.Prober = syncapi.NewProber(imapconn.Options{Dialer: pd}, nil)
			}))
			src, dst := newUser(t), newUser(t)
			for _, host := range hosts {
				before := len(dialer.dialed())
				acct := &imapcopyv1.Account{Provider: "other", Login: "bob@example.test", Password: "pw", Host: host, Port: 993, Security: imapcopyv1.Security_SECURITY_TLS}
				resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
				if err != nil {
					t.Fatalf("TestAccount(%s): %v", host, err)
				}
				dialed := dialer.dialed()[before:]
				if !allowed {
					if resp.GetFailure() != imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY {
						t.Errorf("TestAccount(%s) = %v (%s), want REFUSED_BY_POLICY", host, resp.GetFailure(), resp.GetMessage())
					}
					if len(dialed) > 0 {
						t.Errorf("TestAccount(%s) dialled %v, want no connection attempt", host, dialed)
					}
					// A start is refused before any connection too.
					sa := src.proto()
					sa.Host = host
					_, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: sa, Destination: dst.proto()})
					if status.Code(err) != codes.FailedPrecondition || errorInfo(err).GetReason() != "TEST_FAILURE_REFUSED_BY_POLICY" {
						t.Errorf("StartSync(source %s) = %v, want FailedPrecondition REFUSED_BY_POLICY", host, err)
					}
					if d := dialer.dialed()[before:]; len(d) > 0 {
						t.Errorf("StartSync(source %s) dialled %v, want no connection attempt", host, d)
					}
					continue
				}
				if resp.GetFailure() == imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY {
					t.Errorf("TestAccount(%s) = REFUSED_BY_POLICY (%s), want the host allowed", host, resp.GetMessage())
				}
				if len(dialed) == 0 {
					t.Errorf("TestAccount(%s) dialled nothing, want a connection attempt", host)
				}
			}
			if resolver.lookups.Load() == 0 {
				t.Errorf("loopback.example was never resolved")
			}
		})
	}
}

// TestShutdown: at shutdown, health turns NOT_SERVING and open watch streams end with
// Unavailable instead of holding the server up.
func TestShutdown(t *testing.T) {
	e := newEnv(t, "redis")
	src, dst := newUser(t), newUser(t)
	if _, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}); err != nil {
		t.Fatal(err)
	}
	stream, err := e.client.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: src.email})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	health := healthpb.NewHealthClient(e.conn)
	watch, err := health.Watch(e.ctx(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v, want SERVING", m, err)
	}
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after shutdown began = %v, %v, want NOT_SERVING", m, err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("watch at shutdown = %v, want Unavailable", err)
	}
	<-stopped
}

// TestMutualTLS: over TLS, a client certificate signed by the client CA authenticates
// a caller without a token; no certificate and no token is refused.
func TestMutualTLS(t *testing.T) {
	ca, caKey := newCA(t, "test client CA")
	serverCert := issue(t, ca, caKey, "127.0.0.1", true)
	clientCert := issue(t, ca, caKey, "panel.example", false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	policy := loopbackPolicy(t)
	e := newEnv(t, "redis") // for its store and queue
	svc, err := syncapi.New(syncapi.Deps{
		Store: e.store, Queue: noQueue{}, Sealer: e.keyring, Prober: syncapi.NewProber(imapconn.Options{Dialer: policy}, nil),
		Policy: policy, Providers: providers.Builtin(),
	}, syncapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	server := syncapi.NewServer(svc, syncapi.ServerOptions{
		TLS:  &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven},
		Auth: syncapi.NewAuth(nil, true),
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- server.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-served })

	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
		want  codes.Code
	}{
		{"client certificate", []tls.Certificate{clientCert}, codes.OK},
		{"no certificate", nil, codes.Unauthenticated},
	} {
		creds := credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: tt.certs, ServerName: "127.0.0.1"})
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = imapcopyv1.NewSyncServiceClient(conn).ListProviders(e.ctx(), &imapcopyv1.ListProvidersRequest{})
		if status.Code(err) != tt.want {
			t.Errorf("%s: ListProviders = %v, want %v", tt.name, err, tt.want)
		}
	}
}

type noQueue struct{}

func (noQueue) Publish(context.Context, *imapcopyv1.SyncTask) error {
	return errors.New("no queue in this test")
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

var serials atomic.Int64

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serials.Add(1) + 1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestGuessBudgetSharedByReplicas: the password-guessing budget of an account is kept
// in the store, shared by every api replica, and spent by every spelling of the login
// the server takes for one account (it was per process, per spelling: N replicas and
// M spellings gave N·M times the budget).
func TestGuessBudgetSharedByReplicas(t *testing.T) {
	perAddress := withOptions(func(o *syncapi.Options) { o.PerAddress = syncapi.Rate{Every: time.Hour, Burst: 2} })
	a := newEnv(t, "redis", perAddress)
	b := newEnv(t, "redis", perAddress, withDeps(func(d *syncapi.Deps) { d.Store = a.store }))
	u := newUser(t)
	test := func(e *env, login string) error {
		acct := u.withPassword("guess")
		acct.Login = login
		_, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
		return err
	}
	if err := test(a, u.email); err != nil {
		t.Fatalf("first guess on replica a: %v", err)
	}
	if err := test(b, strings.ToUpper(u.acct.Login)); err != nil {
		t.Fatalf("second guess, on replica b, the login without its domain: %v", err)
	}
	for name, e := range map[string]*env{"a": a, "b": b} {
		if err := test(e, u.email); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("third guess on replica %s = %v, want ResourceExhausted", name, err)
		}
	}
}

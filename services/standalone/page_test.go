package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/servicetest"
)

// waitBrowser bounds one browser case: it bounds a hang, it does not measure speed.
const waitBrowser = 3 * time.Minute

// The page's words the tests look for (pkg/syncpage's messages).
const (
	enAlreadyExists = "A sync task for this account already exists."
	enSyncStarted   = "The synchronization is running; you may close this page."
	enNotFound      = "There is no synchronization for this address."
	enFinished      = "The synchronization is finished."
	enTesting       = "Testing the connection…"
	enSucceeded     = "Connection succeeded"
	enPlanOK        = "Everything fits: the synchronization can start."
	enAuthFailed    = "the server refused the login or password: check them"
	plSourceHeading = "1. Twoja stara skrzynka"
	plNotFound      = "Brak synchronizacji dla tego adresu."
)

// terminalState matches the status line of a finished synchronization, whatever the end.
const terminalState = `#status-view p.state:is([data-state="SYNC_STATE_COMPLETED"],` +
	`[data-state="SYNC_STATE_COMPLETED_WITH_ERRORS"],[data-state="SYNC_STATE_FAILED"],[data-state="SYNC_STATE_CANCELLED"])`

// TestPage drives headless Chromium through the customer's page served by the
// standalone (in-process, the page at / and the JSON API under /v1/ on
// IMAPCOPY_HTTP_ADDR) against the test Dovecots: the seed's flow to the finish, a
// wrong password, the second Synchronize and the cancel, an unknown address, a phone's
// width, the Polish page, the keyboard alone. Each case opens its own tab and saves a
// screenshot in $ARTIFACTS_DIR (or the test's artifact directory: go test
// -artifacts keeps it).
func TestPage(t *testing.T) {
	t.Parallel()
	base := startHTTP(t)
	browser := startBrowser(t)

	t.Run("Flow", func(t *testing.T) {
		src, dst := loadedPair(t, 30)
		ctx := newTab(t, browser)
		do(t, ctx, chromedp.Navigate(base+"/"))
		fillAccount(t, ctx, "source", src, src.Login+"@source.test")
		fillAccount(t, ctx, "destination", dst, dst.Login+"@destination.test")
		do(t, ctx,
			record("source-result"),
			chromedp.Click(chromedp.CSS("#source button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#source-result.ok")),
		)
		if seen := eval[[]string](t, ctx, "window.seen"); len(seen) < 2 || seen[0] != enTesting || !strings.HasPrefix(seen[len(seen)-1], enSucceeded) {
			t.Errorf("the source's test result went through %q, want %q then %q", seen, enTesting, enSucceeded)
		}
		if !hidden(t, ctx, "#sync-button") {
			t.Errorf("the Synchronize button shows with one account tested")
		}
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#destination button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#destination-result.ok")),
			chromedp.WaitVisible(chromedp.CSS("#sync-button")),
			// A change to a tested account hides the button until it is tested again.
			chromedp.SendKeys(chromedp.CSS("#source-password"), "x"+kb.Backspace),
		)
		if !hidden(t, ctx, "#sync-button") {
			t.Errorf("the Synchronize button still shows after the source's password changed")
		}
		// "Check first" shows the pre-flight verdict and starts nothing.
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#source button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#source-result.ok")),
			chromedp.Click(chromedp.CSS("#check-button")),
			chromedp.WaitVisible(chromedp.CSS("#plan-view p.plan-verdict")),
		)
		screenshot(t, ctx, "check")
		if got := text(t, ctx, "#plan-view p.plan-verdict"); got != enPlanOK {
			t.Errorf("the check says %q, want %q", got, enPlanOK)
		}
		if got := text(t, ctx, "#plan-view"); !strings.Contains(got, "30 messages") || !strings.Contains(got, "INBOX → INBOX") {
			t.Errorf("the check shows %q, want the 30 messages to copy and the folders", got)
		}
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#sync-button")),
			chromedp.WaitVisible(chromedp.CSS("#sync-result.ok")),
		)
		if got := text(t, ctx, "#sync-result"); !strings.HasPrefix(got, enSyncStarted) {
			t.Errorf("after Synchronize: %q, want %q", got, enSyncStarted)
		}
		state := waitFinished(t, ctx)
		screenshot(t, ctx, "flow")
		if state != "SYNC_STATE_COMPLETED" {
			t.Fatalf("the page shows %s, want SYNC_STATE_COMPLETED", state)
		}
		if got := text(t, ctx, "#status-view p.state"); got != enFinished {
			t.Errorf("status line %q, want %q", got, enFinished)
		}
		servicetest.Check(t, src, dst)
		// Nothing typed went to the browser's storage, cookies or the address bar.
		if kept := eval[string](t, ctx, "location.search + document.cookie + localStorage.length + sessionStorage.length"); kept != "00" {
			t.Errorf("the page kept %q in its URL, cookies or storage", kept)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		src := shared.slash.AddUser(t)
		wrong := src
		wrong.Password += "-wrong"
		ctx := newTab(t, browser)
		do(t, ctx, chromedp.Navigate(base+"/"))
		fillAccount(t, ctx, "source", wrong, src.Login+"@source.test")
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#source button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#source-result.error")),
		)
		screenshot(t, ctx, "wrong-password")
		if got := text(t, ctx, "#source-result"); !strings.Contains(got, enAuthFailed) {
			t.Errorf("source result %q, want the service's message %q", got, enAuthFailed)
		}
		if !hidden(t, ctx, "#sync-button") {
			t.Errorf("the Synchronize button shows after a failed test")
		}
	})

	t.Run("AlreadyExistsThenCancel", func(t *testing.T) {
		// The destination behind a slow proxy keeps the first sync running while the
		// second click is answered and until it is cancelled.
		src, dst := loadedPair(t, 30)
		proxy := proxytest.New(t, dst.Host+":"+strconv.Itoa(dst.Port), proxytest.WithDirBandwidth(proxytest.Upstream, 20_000))
		slow := dst
		slow.Host, slow.Port = proxy.Host(), proxy.Port()
		ctx := newTab(t, browser)
		do(t, ctx, chromedp.Navigate(base+"/"))
		fillAccount(t, ctx, "source", src, src.Login+"@source.test")
		fillAccount(t, ctx, "destination", slow, dst.Login+"@destination.test")
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#source button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#source-result.ok")),
			chromedp.Click(chromedp.CSS("#destination button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#destination-result.ok")),
			chromedp.Click(chromedp.CSS("#sync-button")),
			chromedp.WaitVisible(chromedp.CSS("#sync-result.ok")),
			chromedp.WaitEnabled(chromedp.CSS("#sync-button")),
			chromedp.Click(chromedp.CSS("#sync-button")),
			chromedp.WaitVisible(chromedp.CSS("#sync-result.error")),
		)
		screenshot(t, ctx, "already-exists")
		if got := text(t, ctx, "#sync-result"); got != enAlreadyExists {
			t.Errorf("second Synchronize: %q, want %q", got, enAlreadyExists)
		}

		// Another page that only knows the address sees the state, no cancel button;
		// the page that started the sync holds its cancel secret and cancels it.
		other := newTab(t, browser)
		do(t, other,
			chromedp.Navigate(base+"/"),
			chromedp.SendKeys(chromedp.CSS("#status-address"), src.Login+"@source.test"),
			chromedp.Click(chromedp.CSS("#status button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#status-view p.state")),
		)
		screenshot(t, other, "other-page")
		if n := eval[int](t, other, `document.querySelectorAll("#status-view button").length`); n != 0 {
			t.Errorf("a page without the cancel secret shows %d cancel buttons", n)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS("#status-view button")))
		if state := waitFinished(t, ctx); state != "SYNC_STATE_CANCELLED" {
			t.Errorf("after Cancel the page shows %s, want SYNC_STATE_CANCELLED", state)
		}
		screenshot(t, ctx, "cancelled")
	})

	t.Run("UnknownAddress", func(t *testing.T) {
		ctx := newTab(t, browser)
		do(t, ctx,
			chromedp.Navigate(base+"/"),
			chromedp.SendKeys(chromedp.CSS("#status-address"), "nobody@source.test"),
			chromedp.Click(chromedp.CSS("#status button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#status-view p.error")),
		)
		screenshot(t, ctx, "unknown-address")
		if got := text(t, ctx, "#status-view"); got != enNotFound {
			t.Errorf("unknown address: %q, want %q", got, enNotFound)
		}
	})

	t.Run("Phone", func(t *testing.T) {
		// At 360 px nothing is wider than the screen: no sideways scrolling.
		src := shared.slash.AddUser(t)
		wrong := src
		wrong.Password += "-wrong"
		ctx := newTab(t, browser)
		do(t, ctx,
			chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile),
			chromedp.Navigate(base+"/?lang=fr"),
		)
		fillAccount(t, ctx, "source", wrong, src.Login+"@source.test")
		do(t, ctx,
			chromedp.Click(chromedp.CSS("#source button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#source-result.error")),
		)
		screenshot(t, ctx, "phone")
		if w := eval[int](t, ctx, "document.documentElement.scrollWidth"); w > 360 {
			t.Errorf("the page is %d px wide on a 360 px screen", w)
		}
	})

	t.Run("Polish", func(t *testing.T) {
		for name, how := range map[string][]chromedp.Action[chromedp.Void]{
			"query": {chromedp.Navigate(base + "/?lang=pl")},
			"accept-language": {
				acceptLanguage("pl-PL,pl;q=0.9,en;q=0.5"),
				chromedp.Navigate(base + "/"),
			},
		} {
			ctx := newTab(t, browser)
			do(t, ctx, how...)
			lang := attr(t, ctx, "html", "lang")
			do(t, ctx,
				chromedp.SendKeys(chromedp.CSS("#status-address"), "nobody@source.test"),
				chromedp.Click(chromedp.CSS("#status button[type=submit]")),
				chromedp.WaitVisible(chromedp.CSS("#status-view p.error")),
			)
			screenshot(t, ctx, "polish-"+name)
			if lang != "pl" {
				t.Errorf("%s: <html lang=%q>, want pl", name, lang)
			}
			if got := text(t, ctx, "#source-heading"); got != plSourceHeading {
				t.Errorf("%s: source heading %q, want %q", name, got, plSourceHeading)
			}
			if got := text(t, ctx, "#status-view"); got != plNotFound {
				t.Errorf("%s: unknown address %q, want %q (app.js in Polish)", name, got, plNotFound)
			}
		}
	})

	t.Run("Keyboard", func(t *testing.T) {
		src, dst := loadedPair(t, 10)
		ctx := newTab(t, browser)
		do(t, ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitReady(chromedp.CSS(`#source-provider option[value="other"]`)),
			chromedp.WaitReady(chromedp.CSS(`#destination-provider option[value="other"]`)),
		)
		// The three language links come first.
		for range 3 {
			key(t, ctx, kb.Tab)
			if tag := eval[string](t, ctx, "document.activeElement.tagName"); tag != "A" {
				t.Fatalf("focus on %s, want a language link", tag)
			}
		}
		for _, acct := range []struct {
			name  string
			a     imapconn.Account
			login string
		}{{"source", src, src.Login + "@source.test"}, {"destination", dst, dst.Login + "@destination.test"}} {
			tab(t, ctx, acct.name+"-provider")
			key(t, ctx, kb.End) // "Other" is the last choice
			if v := eval[string](t, ctx, "document.activeElement.value"); v != "other" {
				t.Fatalf("%s provider %q after End, want other", acct.name, v)
			}
			tab(t, ctx, acct.name+"-login")
			key(t, ctx, acct.login)
			tab(t, ctx, acct.name+"-password")
			key(t, ctx, acct.a.Password)
			tab(t, ctx, acct.name+"-host")
			key(t, ctx, acct.a.Host)
			tab(t, ctx, acct.name+"-port")
			key(t, ctx, strings.Repeat(kb.Backspace, 6)+strconv.Itoa(acct.a.Port))
			tab(t, ctx, acct.name+"-security") // SSL/TLS, the first choice, is right
			tab(t, ctx, "")
			if tag := eval[string](t, ctx, "document.activeElement.textContent"); tag != "Test connection" {
				t.Fatalf("focus on %q, want the Test connection button", tag)
			}
			key(t, ctx, kb.Enter)
			do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#"+acct.name+"-result.ok")))
		}
		tab(t, ctx, "check-button") // the check comes before Synchronize
		key(t, ctx, kb.Enter)
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#plan-view p.plan-verdict")))
		tab(t, ctx, "sync-button")
		key(t, ctx, " ")
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#sync-result.ok")))
		state := waitFinished(t, ctx)
		screenshot(t, ctx, "keyboard")
		if state != "SYNC_STATE_COMPLETED" {
			t.Fatalf("the page shows %s, want SYNC_STATE_COMPLETED", state)
		}
		servicetest.Check(t, src, dst)
	})
}

// startHTTP runs the standalone in-process with its HTTP listener on a free loopback
// address and returns its base URL once the gRPC health says SERVING.
func startHTTP(t *testing.T) string {
	t.Helper()
	base, _ := startStandalone(t)
	return base
}

// startStandalone runs the standalone in-process on free loopback addresses and
// returns its HTTP base URL and its gRPC address once the gRPC health says SERVING.
func startStandalone(t *testing.T) (httpBase, grpcAddr string) {
	t.Helper()
	httpAddr := servicetest.FreeAddr(t)
	grpcAddr = servicetest.FreeAddr(t)
	env := testEnv()
	env["IMAPCOPY_HTTP_ADDR"] = httpAddr
	logs := &servicetest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, []string{"-data-dir", t.TempDir(), "-grpc-addr", grpcAddr, "-admin-addr", ""},
			func(k string) string { return env[k] }, logs)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("standalone logs:\n%s", servicetest.Tail(logs.String(), 60))
		}
	})
	dial(t, grpcAddr).waitServing(t, exited)
	return "http://" + httpAddr, grpcAddr
}

// startBrowser starts Debian's chromium, headless, for the test's cases.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.WindowSize(1000, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// newTab opens a tab of browser for t, closed with t.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	ctx, cancelTimeout := context.WithTimeout(ctx, waitBrowser)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return ctx
}

// loadedPair is a source with n messages and an empty destination, new users of the
// two Dovecots.
func loadedPair(t *testing.T, n int) (src, dst imapconn.Account) {
	t.Helper()
	src, dst = shared.slash.AddUser(t), shared.dot.AddUser(t)
	if err := imaptest.Load(t.Context(), src, imaptest.Generate(int64(n), imaptest.Spec{Count: n})); err != nil {
		t.Fatalf("load the source: %v", err)
	}
	return src, dst
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		screenshot(t, ctx, "failed")
		t.Fatalf("browser: %v", err)
	}
}

// fillAccount picks "Other" and types an account of a local Dovecot in the section name.
func fillAccount(t *testing.T, ctx context.Context, name string, a imapconn.Account, login string) {
	t.Helper()
	sel := "#" + name + "-"
	do(t, ctx,
		chromedp.WaitReady(chromedp.CSS(sel+`provider option[value="other"]`)),
		chromedp.SetValue(chromedp.CSS(sel+"provider"), "other"),
		script(`document.getElementById("`+name+`-provider").dispatchEvent(new Event("change"))`),
		chromedp.SendKeys(chromedp.CSS(sel+"login"), login),
		chromedp.SendKeys(chromedp.CSS(sel+"password"), a.Password),
		chromedp.SetValue(chromedp.CSS(sel+"host"), a.Host),
		chromedp.SetValue(chromedp.CSS(sel+"port"), strconv.Itoa(a.Port)),
		chromedp.SetValue(chromedp.CSS(sel+"security"), "SECURITY_TLS"),
	)
}

// waitFinished waits until the live status shows an end and returns its state.
func waitFinished(t *testing.T, ctx context.Context) string {
	t.Helper()
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(terminalState)))
	return attr(t, ctx, "#status-view p.state", "data-state")
}

// key types keys (text or kb constants) into the focused element.
func key(t *testing.T, ctx context.Context, keys string) {
	t.Helper()
	do(t, ctx, chromedp.KeyEvent(keys))
}

// tab presses Tab and checks that the focus moved to the element with id want.
func tab(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	key(t, ctx, kb.Tab)
	if got := eval[string](t, ctx, "document.activeElement.id"); got != want {
		t.Fatalf("Tab moved the focus to %q, want %q", got, want)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return a.Value
}

// record keeps every text the element with this id shows, in window.seen.
func record(id string) chromedp.Action[chromedp.Void] {
	return script(`window.seen = []; new MutationObserver(() => window.seen.push(document.getElementById("` + id + `").textContent))` +
		`.observe(document.getElementById("` + id + `"), {childList: true, characterData: true, subtree: true}); true`)
}

// script runs js in the page for its effect.
func script(js string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[any](js)(ctx, tg)
		return chromedp.Void{}, err
	}
}

// acceptLanguage makes the tab send this Accept-Language.
func acceptLanguage(v string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": v}})
		return chromedp.Void{}, err
	}
}

func hidden(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	return eval[bool](t, ctx, `document.querySelector("`+sel+`").hidden`)
}

// screenshot saves the whole page as name.png in $ARTIFACTS_DIR/<test> or the test's
// artifact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := t.ArtifactDir()
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		dir = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", path)
}

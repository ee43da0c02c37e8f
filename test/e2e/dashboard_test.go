//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"meshward.dev/meshward/internal/testenv"
)

const dashboardURL = "http://127.0.0.1:9900"

// browser starts Debian's headless chromium with a throwaway profile and
// returns a chromedp context bounded by d.
func browser(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	path := testenv.Tool(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}

// waitFor waits, bounded, until sel matches an element on the open page.
func waitFor(t *testing.T, ctx context.Context, sel string, d time.Duration) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitReady(chromedp.CSS(sel))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("#live")))
		t.Fatalf("no %s within %s (%v); the page shows:\n%s", sel, d, err, tail(html, 40))
	}
}

// TestDashboard opens the demo mesh's dashboard in a real browser: the
// graph shows the four services, then the frontend->catalog edge once
// traffic flows, a forbidden call shows up in the denials and as a
// forbidden edge, all without reloading, and nothing is fetched from
// outside the dashboard. It saves a screenshot of the graph.
func TestDashboard(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), ".meshward")
	up := start(t, nil, "up", "--demo", "--data-dir", dataDir)
	up.waitOutput(t, "is up", 60*time.Second)
	up.waitOutput(t, dashboardURL+"/", time.Second) // the banner names it

	ctx := browser(t, 3*time.Minute)

	// Everything the page loads must come from the dashboard itself, and
	// its script must not throw.
	var mu sync.Mutex
	var outside, thrown []string
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; !strings.HasPrefix(u, dashboardURL+"/") && !strings.HasPrefix(u, "data:") {
				outside = append(outside, u)
			}
		case *runtime.EventExceptionThrown:
			thrown = append(thrown, ev.ExceptionDetails.Text)
		}
	}
	if err := chromedp.Listen(ctx, listen); err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx,
		chromedp.Navigate(dashboardURL+"/"),
		chromedp.WaitReady(chromedp.CSS(`svg[data-testid="service-graph"]`)),
	); err != nil {
		t.Fatalf("open the dashboard: %v\n%s", err, tail(up.out.String(), 30))
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != "Service graph · meshward" {
		t.Errorf("title = %q", title)
	}
	for _, svc := range []string{"frontend", "catalog", "orders", "payments"} {
		waitFor(t, ctx, `g.node[data-node="`+svc+`"]`, 10*time.Second)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`g.node`)))
	if err != nil || len(nodes) != 4 {
		t.Fatalf("graph has %d nodes (%v), want the 4 demo services", len(nodes), err)
	}

	t.Run("traffic draws the frontend->catalog edge live", func(t *testing.T) {
		for range 5 {
			if code, body := curl(t, frontend+"/api/products"); code != 200 {
				t.Fatalf("GET /api/products = %d %s", code, body)
			}
		}
		edge := `g.edge[data-source="frontend"][data-destination="catalog"]`
		waitFor(t, ctx, edge, 15*time.Second)
		label, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(edge+` .edge-label`)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(label, "req/s") || !strings.Contains(label, "0 denied") {
			t.Errorf("edge label = %q, want a rate and no denies", label)
		}
		lock, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(edge+` path.lock`)))
		if err != nil || len(lock) != 1 {
			t.Errorf("edge has no mTLS lock (%v)", err)
		}
	})

	t.Run("a forbidden call appears in the denials live", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(dashboardURL+"/denials"),
			chromedp.WaitReady(chromedp.CSS(`table[data-testid="denies"]`)),
		); err != nil {
			t.Fatal(err)
		}
		row := `table[data-testid="denies"] tr[data-source="frontend"][data-destination="payments"]`
		before, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(row), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatal(err)
		}
		if len(before) != 0 {
			t.Fatalf("a deny is listed before the forbidden call")
		}
		if code, body := curl(t, frontend+"/api/forbidden"); code != 403 {
			t.Fatalf("GET /api/forbidden = %d %s", code, body)
		}
		waitFor(t, ctx, row, 20*time.Second)
		text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(row)))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"frontend", "payments", "/charge", "payments/default-deny", "enforce"} {
			if !strings.Contains(text, want) {
				t.Errorf("deny row %q lacks %q", text, want)
			}
		}
	})

	t.Run("the policy matrix links the allowed cell to its rule", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(dashboardURL+"/policies"),
			chromedp.WaitReady(chromedp.CSS(`table[data-testid="matrix"]`)),
		); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `table[data-testid="matrix"] a[href="#rule-catalog--frontend-browse"]`, time.Second)
		waitFor(t, ctx, `li#rule-catalog--frontend-browse`, time.Second)
	})

	t.Run("the graph marks the forbidden edge; screenshot", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(dashboardURL+"/")); err != nil {
			t.Fatal(err)
		}
		// Steady traffic for a few seconds so the rates show (bounded).
		for range 3 {
			curl(t, "-X", "POST", "-d", `{"product":1}`, frontend+"/api/orders")
		}
		for i := range 12 {
			curl(t, frontend+"/api/products")
			if i%4 == 0 {
				curl(t, frontend+"/api/forbidden")
			}
			time.Sleep(250 * time.Millisecond)
		}
		waitFor(t, ctx, `g.edge.forbidden[data-source="frontend"][data-destination="payments"]`, 10*time.Second)
		waitFor(t, ctx, `g.edge[data-source="orders"][data-destination="payments"]`, 10*time.Second)
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 600 {
			t.Errorf("screenshot is %dx%d", b.Dx(), b.Dy())
		}
		out := filepath.Join(os.TempDir(), "meshward-dashboard.png")
		if os.Getenv("MESHWARD_UPDATE_SCREENSHOT") != "" {
			out = "../../docs/dashboard.png"
		}
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", out)
	})

	mu.Lock()
	defer mu.Unlock()
	if len(outside) > 0 {
		t.Errorf("the dashboard loaded resources from elsewhere: %v", outside)
	}
	if len(thrown) > 0 {
		t.Errorf("the dashboard's script threw: %v", thrown)
	}
}

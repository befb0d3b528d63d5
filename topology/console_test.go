package topology_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/minipipe/minipipe/testkit"
	"github.com/minipipe/minipipe/testkit/browser"
)

// browserPage drives the console in a real Chromium.
type browserPage struct {
	t   *testing.T
	ctx context.Context
}

// js runs a JavaScript expression in the page and returns its value.
func (p *browserPage) js(expr string) any {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr, chromedp.EvalAsValue))
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait waits until a JavaScript predicate holds in the page; what saying names it when it does not.
func (p *browserPage) wait(saying, predicate string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		ctx, cancel := context.WithTimeout(p.ctx, time.Until(deadline)+5*time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(100*time.Millisecond)))
		cancel()
		// A page that loads itself again (the console starting) ends the poll's JavaScript context: poll again.
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "context") || time.Until(deadline) < 100*time.Millisecond {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string]("location.href + '\\n' + document.body.innerText.slice(0, 3000)"))
		api := ""
		if u, uerr := url.Parse(strings.TrimSpace(strings.SplitN(text, "\n", 2)[0])); uerr == nil && u.Host != "" {
			if r, err := testkit.Try("GET", "http://"+u.Host+"/console/api/overview", "", 10*time.Second); err == nil {
				api = fmt.Sprintf("%d %.1500s", r.Status, r.Body)
			} else {
				api = err.Error()
			}
		}
		p.t.Fatalf("waiting for %s: %v\nthe page shows:\n%s\nthe overview API answers: %s", saying, err, text, api)
	}
}

// open loads a console URL (a fresh page load) and waits until its page has rendered.
func (p *browserPage) open(base, hash string) {
	p.t.Helper()
	// The console starts after Kafka and the registry: wait for its API before loading a page (the notice a
	// page gets meanwhile reloads itself, but not reliably in headless Chromium).
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := testkit.Try("GET", base+"/console/api/info", "", 5*time.Second)
		if err == nil && r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the console at %s did not start: %v %d", base, err, r.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/"+hash)); err != nil {
		p.t.Fatalf("open %s: %v", hash, err)
	}
	// While the console starts, the page is a notice that loads itself again.
	p.wait("page "+hash, `document.getElementById('main') !== null && document.getElementById('main').dataset.ready === '1'`, 60*time.Second)
}

// goTo changes page inside the application (hash routing) and waits until it has rendered.
func (p *browserPage) goTo(hash, page string) {
	p.t.Helper()
	p.js(`document.getElementById('main').removeAttribute('data-ready'); location.hash = ` + jsString(hash) + `; true`)
	p.wait("page "+hash, fmt.Sprintf(`document.getElementById('main') !== null && document.getElementById('main').dataset.ready === '1' && document.getElementById('main').dataset.page === %s`, jsString(page)), 20*time.Second)
}

func (p *browserPage) text(selector string) string {
	p.t.Helper()
	v, _ := p.js(`(function(){ const e = document.querySelector(` + jsString(selector) + `); return e ? e.innerText : ""; })()`).(string)
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestConsoleInBrowser walks the console in Debian's Chromium, headless, as its issue asks: after the seed's
// two curl commands, connect_test with its 2 rows, the schema diff showing lastname added, the seed's query
// and a bar chart of it saved to a new dashboard that is still there after a reload and on a second
// instance, the read-only rule, the registry page, and the dead letters of bad records, one of them
// re-driven once its cause (an unregistered schema) is fixed from the registry page. Every page is
// screenshotted ($MINIPIPE_SCREENSHOTS, else the test's temporary directory).
func TestConsoleInBrowser(t *testing.T) {
	brokers := testkit.Kafka(t)
	ctx := browser.Browser(t, 5*time.Minute)
	for _, topic := range []string{"connect_test", "connect_test.dlq"} {
		deleteTopic(t, brokers, topic)
	}
	cfgA := testkit.TestConfig(t, brokers)
	cfgA.Topics = "connect_test"
	cfgA.RotateInterval = 3 * time.Second
	cfgB := testkit.TestConfig(t, brokers)
	cfgB.Topics, cfgB.RotateInterval = cfgA.Topics, cfgA.RotateInterval
	cfgB.PipelineName, cfgB.Warehouse = cfgA.PipelineName, cfgA.WarehouseURL()
	cfgB.RegistryTopic, cfgB.ConsoleTopic = cfgA.RegistryTopic, cfgA.ConsoleTopic
	a := testkit.StartProcess(t, cfgA)
	b := testkit.StartProcess(t, cfgB)
	baseA, baseB := "http://"+cfgA.HTTPAddr, "http://"+cfgB.HTTPAddr

	for i, cmd := range []string{seedCurl1, seedCurl2} {
		if status, body := curl(t, cmd, cfgA.RestAddr); status != 200 {
			t.Fatalf("seed curl %d: %d %s", i+1, status, body)
		}
	}
	// Bad records straight to the topic: text that is not Avro, and carol's row written with schema id 3,
	// which nobody has registered yet.
	carol := []byte{0, 0, 0, 0, 3, 0x0a, 'c', 'a', 'r', 'o', 'l', 0x02, 0x0a, 'j', 'o', 'n', 'e', 's', 0x02, 0x0c, 'b', 'e', 'r', 'l', 'i', 'n'}
	produceRaw(t, brokers, "connect_test", []byte("hello, I am not Avro"), carol)

	p := &browserPage{t: t, ctx: ctx}
	// Overview: the topic and its table, live.
	p.open(baseA, "#/")
	p.wait("connect_test on the overview", `[...document.querySelectorAll('table.tables td a')].some(a => a.textContent === 'connect_test')`, 60*time.Second)
	p.wait("dead letters counted on the overview", `document.querySelector('#kpi-dead b').textContent === '2'`, 60*time.Second)
	browser.Screenshot(t, ctx, "overview")

	// Tables: connect_test with 2 rows; its schema versions, lastname added in the diff.
	p.goTo("#/tables", "tables")
	p.wait("connect_test in the tables list", `[...document.querySelectorAll('table.tables td a')].some(a => a.textContent === 'connect_test')`, 10*time.Second)
	browser.Screenshot(t, ctx, "tables")
	// The two rows may land in different Kafka partitions, committed by different rotations: the table is
	// listed once the first is, so read its page again until both are (or the deadline).
	for deadline := time.Now().Add(60 * time.Second); ; {
		p.goTo("#/tables/connect_test", "tables")
		p.wait("the table page", `document.getElementById('table-name') !== null`, 10*time.Second)
		got := p.text("#table-rows b")
		if got == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect_test shows %q rows, want 2", got)
		}
		p.goTo("#/tables", "tables")
		time.Sleep(time.Second)
	}
	added := p.js(`[...document.querySelectorAll('#schema-diff tr.added td:first-child')].map(td => td.textContent).join(',')`)
	if added != "lastname" {
		t.Fatalf("the schema diff marks %q as added, want lastname\n%s", added, p.text("#schema-diff"))
	}
	if cols := p.text("table.columns"); !strings.Contains(cols, "lastname") || !strings.Contains(cols, "dt") {
		t.Fatalf("columns: %q", cols)
	}
	browser.Screenshot(t, ctx, "table")

	// SQL: the seed's query, sorted; then a bar chart, saved to a new dashboard.
	p.goTo("#/sql", "sql")
	p.js(`document.getElementById('sql').value = "SELECT name, lastname FROM connect_test ORDER BY name"; document.getElementById('run').click(); true`)
	p.wait("the query's result", `document.querySelector('#result table.result') !== null`, 30*time.Second)
	rows := p.js(`[...document.querySelectorAll('#result table.result tbody tr')].map(tr => [...tr.children].map(td => td.textContent).join('|')).join(';')`)
	if rows != "alice|NULL;bob|smith" {
		t.Fatalf("the SQL page shows %q", rows)
	}
	// Completion offers the table's columns.
	p.js(`const ta = document.getElementById('sql'); ta.focus(); ta.value = "SELECT lastn"; ta.selectionStart = ta.selectionEnd = ta.value.length; ta.dispatchEvent(new Event('input')); true`)
	p.wait("a completion of lastn", `!document.getElementById('completions').hidden && document.getElementById('completions').innerText.includes('lastname')`, 5*time.Second)
	// The read-only rule, in the page.
	for _, stmt := range []string{"COPY connect_test TO '/tmp/stolen.csv'", "INSTALL httpfs", "ATTACH '/tmp/x.db' AS x", "CREATE TABLE t AS SELECT 1", "SELECT 1; DROP VIEW connect_test"} {
		p.js(`document.getElementById('sql').value = ` + jsString(stmt) + `; document.getElementById('run').click(); true`)
		p.wait("the refusal of "+stmt, `document.querySelector('#result .error') !== null`, 10*time.Second)
		if msg := p.text("#result .error"); !strings.Contains(msg, "read-only") && !strings.Contains(msg, "one statement") {
			t.Fatalf("%s: the page says %q", stmt, msg)
		}
	}
	p.js(`document.getElementById('sql').value = "SELECT name, length(name) AS letters FROM connect_test ORDER BY name"; document.getElementById('run').click(); true`)
	p.wait("the chart query's result", `document.querySelectorAll('#result table.result tbody tr').length === 2`, 30*time.Second)
	p.js(`const s = document.getElementById('chart-type'); s.value = 'bar'; s.dispatchEvent(new Event('change')); true`)
	p.wait("a bar chart with two bars", `document.querySelectorAll('#chart svg rect.bar').length === 2`, 10*time.Second)
	browser.Screenshot(t, ctx, "sql")
	p.js(`document.getElementById('query-name').value = 'letters per name'; document.getElementById('dashboard-name').value = 'seed'; document.getElementById('add-to-dashboard').click(); true`)
	p.wait("the new dashboard's link", `document.getElementById('dashboard-link') !== null`, 20*time.Second)
	href, _ := p.js(`document.getElementById('dashboard-link').getAttribute('href')`).(string)
	if !strings.HasPrefix(href, "#/dashboards/") {
		t.Fatalf("dashboard link %q", href)
	}
	// Reloaded, on this instance and on the other one: the dashboard with its chart.
	for _, base := range []string{baseA, baseB} {
		p.open(base, href)
		p.wait("the dashboard's bar chart on "+base, `document.getElementById('dashboard-title').textContent === 'seed' && document.querySelectorAll('#dashboard .tile svg rect.bar').length === 2`, 30*time.Second)
	}
	// Edit the layout: the tile made full width and saved; reloaded, it stays so.
	p.js(`document.getElementById('edit-layout').click(); for (let i = 0; i < 6; i++) document.querySelector('.tile-tools button[title=wider]').click(); document.getElementById('edit-layout').click(); true`)
	p.wait("the layout saved", `document.getElementById('refreshed').textContent === 'layout saved'`, 10*time.Second)
	p.open(baseB, href)
	p.wait("the wider tile after a reload", `document.querySelector('#dashboard .tile').style.gridColumn.includes('span 12') && document.querySelectorAll('#dashboard .tile svg rect.bar').length === 2`, 30*time.Second)
	browser.Screenshot(t, ctx, "dashboard")
	p.goTo("#/dashboards", "dashboards")
	p.wait("the dashboard in the list", `document.querySelector('table.dashboards').innerText.includes('seed')`, 10*time.Second)

	// Registry: register version 3 of connect_test-value (city added), which gets id 3: the cause of carol's
	// dead letter.
	p.open(baseA, "#/registry")
	p.wait("the subject", `document.querySelector('table.subjects').innerText.includes('connect_test-value')`, 10*time.Second)
	v3 := `{"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}, {"name": "lastname", "type": ["null", "string"], "default": null}, {"name": "city", "type": ["null", "string"], "default": null}]}`
	p.js(`document.getElementById('reg-subject').value = 'connect_test-value'; document.getElementById('reg-schema').value = ` + jsString(v3) + `; document.getElementById('reg-check').click(); true`)
	p.wait("the compatibility check", `document.getElementById('reg-result').innerText.includes('Compatible')`, 10*time.Second)
	p.js(`document.getElementById('reg-register').click(); true`)
	p.wait("the registration", `document.getElementById('reg-result').innerText.includes('Registered: schema id 3')`, 10*time.Second)
	browser.Screenshot(t, ctx, "registry")

	// Dead letters: both bad records with their reasons; carol's decoded now that id 3 is known; re-driven.
	p.goTo("#/deadletters", "deadletters")
	p.wait("connect_test's dead letters", `document.querySelector('table.dlq-topics').innerText.includes('connect_test')`, 10*time.Second)
	p.goTo("#/deadletters/connect_test", "deadletters")
	p.wait("two dead letters", `document.querySelectorAll('table.letters tbody tr').length === 2`, 10*time.Second)
	letters := p.text("table.letters")
	for _, want := range []string{"not-confluent-avro", "unknown-schema-id", "hello, I am not Avro", `"carol"`, "minipipe.source.topic"} {
		if !strings.Contains(letters, want) && !strings.Contains(p.js(`document.querySelector('table.letters').textContent`).(string), want) {
			t.Fatalf("the dead letters do not show %q:\n%s", want, letters)
		}
	}
	p.js(`const tr = [...document.querySelectorAll('table.letters tbody tr')].find(tr => tr.textContent.includes('unknown-schema-id')); const c = tr.querySelector('input.pick'); c.click(); true`)
	browser.Screenshot(t, ctx, "deadletters")
	p.js(`document.getElementById('redrive').click(); true`)
	p.wait("the re-drive", `document.getElementById('redrive-result').innerText.includes('Re-driven: 1 of 1')`, 20*time.Second)
	// Carol's row lands in the table; the re-drive is counted, and recorded so a second one is refused.
	testkit.WaitQuery(t, cfgA.WarehouseURL(), "SELECT name, lastname FROM connect_test ORDER BY name", cfgA.RotateInterval+30*time.Second,
		func(r [][]string) bool { return len(r) == 3 })
	if n := a.Metric("minipipe_console_redriven_total", "topic", "connect_test"); n != 1 {
		t.Fatalf("minipipe_console_redriven_total = %v", n)
	}
	p.open(baseB, "#/deadletters/connect_test")
	p.wait("the re-driven mark on the other instance", `document.querySelector('table.letters').innerText.includes('re-driven')`, 10*time.Second)
	// Asked again, through the other instance: not sent twice.
	coords := p.js(`[...document.querySelectorAll('table.letters tbody tr')].find(tr => tr.textContent.includes('unknown-schema-id')).dataset.offset`).(string)
	part, off, _ := strings.Cut(coords, "/")
	r := testkit.Do(t, "POST", baseB+"/console/api/deadletters/connect_test/redrive", `{"records":[{"partition":`+part+`,"offset":`+off+`}]}`, "Content-Type", "application/json")
	if r.Status != 200 || !strings.Contains(string(r.Body), `"status":"already"`) {
		t.Fatalf("the second re-drive: %d %s", r.Status, r.Body)
	}
	if n := b.Metric("minipipe_console_redriven_total", "topic", "connect_test"); n != 0 {
		t.Fatalf("the other instance counted %v re-drives", n)
	}
}

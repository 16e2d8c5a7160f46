package copybench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	ok := &CheckVerdict{OK: true}
	differs := &CheckVerdict{Problems: 4, Kinds: map[string]int{"missing": 2, "extra": 2},
		Causes: map[string]int{DiffHeaderAdded: 2, DiffKeywordsLost: 1}, CausesOfRep: 1}
	res := &Results{Params: Params{Reps: 3, WANReps: 1, Networks: []string{"loopback", "wan"}}}
	for i, w := range []float64{10, 12, 11} {
		res.Runs = append(res.Runs,
			RunResult{Network: Loopback, Tool: Imapcopy, Rep: i + 1, WallSeconds: w, MaxRSSBytes: 50e6, Check: ok},
			RunResult{Network: Loopback, Tool: Mbsync, Rep: i + 1, WallSeconds: 20, Check: differs})
	}
	wrong := &CheckVerdict{Problems: 1, Kinds: map[string]int{"missing": 1}, Examples: []string{"folder INBOX: missing on destination: uid 7"}}
	res.Runs = append(res.Runs, RunResult{Network: WAN, Tool: Imapcopy, Rep: 1, WallSeconds: 30, Check: wrong, ExitCode: 3, Error: "exit code 3"})
	res.Summarize()

	if len(res.Summary) != 3 {
		t.Fatalf("%d summaries, want 3: %+v", len(res.Summary), res.Summary)
	}
	if got, want := res.Summary[0].WallSeconds, (Stat{Median: 11, Min: 10, Max: 12}); got != want {
		t.Errorf("loopback imapcopy wall = %+v, want %+v", got, want)
	}
	if got := res.Summary[0].ChecksOK; got != 3 {
		t.Errorf("loopback imapcopy checks OK = %d, want 3", got)
	}
	if len(res.Ratios) != 1 || res.Ratios[0].Median != 0.55 || len(res.Ratios[0].Pairs) != 3 {
		t.Errorf("ratios = %+v, want loopback pairs 0.5 0.6 0.55, median 0.55", res.Ratios)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"OK 3/3",
		"differs 3/3: " + DiffHeaderAdded + " 2, " + DiffKeywordsLost + " 1",
		"WRONG 1/1",
		"missing on destination: uid 7",
		"1 on the WAN",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if len(back.Runs) != len(res.Runs) || back.Runs[1].Check.Causes[DiffHeaderAdded] != 2 {
		t.Errorf("JSON round trip lost runs or causes")
	}
}

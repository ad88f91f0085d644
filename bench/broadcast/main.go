// Command broadcast is the broadcast benchmark: it starts a Parley server in this process
// (SQLite in a temporary directory, or --db postgres://...), gives a bot N users on the
// sandbox channel, and measures a v1 broadcast to all of them: the time to accept the API
// call (the broadcast and its recipients stored), the fan-out rate until it is
// published, the process's peak RSS, and the API-trigger latency of another bot before
// and during the fan-out.
//
//	go run ./bench/broadcast                     # 100,000 recipients on SQLite
//	go run ./bench/broadcast -recipients 20000
//	go run ./bench/broadcast -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench'
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/bench/internal/loadgen"
	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/store"
)

const triggerFlow = `{"key": "bench", "start": "msg", "nodes": [
  {"id": "msg", "type": "message", "text": "Order {{order_id}} is on its way", "next": "done"},
  {"id": "done", "type": "end"}]}`

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	n := flag.Int("recipients", 100_000, "recipients of the broadcast")
	rate := flag.Int("trigger-rate", 200, "triggers a second for another bot, before and during the broadcast (0: none)")
	idleFor := flag.Duration("idle", 6*time.Second, "how long the triggers' idle latency is measured, before the broadcast (about as many as during the fan-out)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the fan-out to this file")
	flag.Parse()
	ctx := context.Background()

	var caster auth.NewBot
	setup := func(srv *app.Server, _ auth.NewBot) error {
		var err error
		if caster, err = auth.New(srv.Store(), 0).CreateBot(ctx, fmt.Sprintf("caster-%d", time.Now().UnixNano()), "broadcasts"); err != nil {
			return err
		}
		return makeUsers(ctx, srv.Store(), caster, *n)
	}
	start := time.Now()
	srv := loadgen.Start(ctx, app.Config{DB: *db, BroadcastMax: *n}, []string{triggerFlow}, setup)
	defer srv.Stop()
	fmt.Printf("db=%s recipients=%d (users made in %s)\n", srv.Store().Dialect(), *n, time.Since(start).Round(time.Millisecond))

	var phone atomic.Int64
	trigger := loadgen.Trigger(ctx, srv.FlowURL+"bench", srv.Bot.APIKey, func() int64 { return phone.Add(1) }, nil)
	paced := func(stop <-chan struct{}) loadgen.Result {
		if *rate <= 0 {
			<-stop
			return loadgen.Result{}
		}
		return loadgen.Paced(ctx, *rate, stop, trigger)
	}
	idleStop := make(chan struct{})
	time.AfterFunc(*idleFor, func() { close(idleStop) })
	schedBefore := schedLatencies()
	idle := paced(idleStop)
	report("trigger, idle:", idle)
	reportSched("scheduling latency, idle:", schedBefore)

	base := strings.TrimSuffix(srv.FlowURL, fmt.Sprintf("/bot-api/v2.0/customer/%d/bot/%s/flow/", srv.Bot.CustomerID, srv.Bot.BotKey))
	bpath := fmt.Sprintf("%s/bot-api/v1.0/customer/%d/bot/%s/broadcast", base, caster.CustomerID, caster.BotKey)
	body := broadcastBody(*n)
	defer loadgen.Profile(*cpuProfile)()
	// The other bot's triggers go on through the accept and the fan-out, each measured
	// apart.
	during := func() (stop func() loadgen.Result) {
		done := make(chan struct{})
		res := make(chan loadgen.Result, 1)
		go func() { res <- paced(done) }()
		return func() loadgen.Result { close(done); return <-res }
	}
	stopAccepting := during()
	t0 := time.Now()
	id := post(bpath, caster.APIKey, body)
	accept := time.Since(t0)
	duringAccept := stopAccepting()
	fmt.Printf("accept:                 %s for %d recipients (%.1f MB body)\n", accept.Round(time.Millisecond), *n, float64(len(body))/1e6)
	report("trigger, during accept:", duringAccept)

	stopFanOut := during()
	schedBefore = schedLatencies()
	allocBefore := readGC()
	var published time.Duration
	var polls []time.Duration
	for {
		polled := time.Now()
		status, sent := state(fmt.Sprintf("%s/%d?summary=true", bpath, id), caster.APIKey)
		polls = append(polls, time.Since(polled))
		if status == store.BroadcastPublished {
			published = time.Since(t0)
			if sent != *n {
				log.Fatalf("published with %d of %d sent", sent, *n)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	duringFanOut := stopFanOut()
	fanOut := published - accept
	fmt.Printf("fan-out:                %s, %.0f recipients/s\n", fanOut.Round(time.Millisecond), float64(*n)/fanOut.Seconds())
	report("trigger, during fan-out:", duringFanOut)
	slices.Sort(polls)
	fmt.Printf("summary polls:          %d, p50 %s, max %s\n", len(polls), polls[len(polls)/2].Round(time.Microsecond), polls[len(polls)-1].Round(time.Microsecond))
	reportSched("scheduling latency, fan-out:", schedBefore)
	allocAfter := readGC()
	fmt.Printf("heap, fan-out:          %.1f KB allocated a recipient, %d collections\n",
		float64(allocAfter.allocated-allocBefore.allocated)/float64(*n)/1e3, allocAfter.collections-allocBefore.collections)
	fmt.Printf("peak RSS:               %s\n", peakRSS())
}

// makeUsers gives the bot n users, as triggers and inbound messages would have.
func makeUsers(ctx context.Context, st *store.Store, nb auth.NewBot, n int) error {
	b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		return err
	}
	const perTx = 5000
	for start := 0; start < n; start += perTx {
		err := st.InTx(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+perTx, n); i++ {
				d := digits(i)
				if _, err := st.UpsertUserID(ctx, tx, store.UserUpsert{BotID: b.ID, ChannelUserID: d, Channel: "whatsapp",
					Attrs: map[string]string{"user.phone_no": "+" + d, "user.channel": "whatsapp"}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func digits(i int) string { return fmt.Sprintf("91%010d", i) }

func broadcastBody(n int) []byte {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = digits(i)
	}
	b, err := json.Marshal(map[string]any{"broadcastId": nil, "broadcastTitle": "bench", "publishedOn": nil,
		"audience": map[string]any{"rule": map[string]any{"channels": []string{"sandbox"}, "channelUserIds": ids}},
		"payload": map[string]any{"type": "direct", "content": []any{map[string]any{"type": "text",
			"data": map[string]string{"message": "Our summer sale starts today"}}}}, "status": nil})
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func post(url, key string, body []byte) int64 {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Basic "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var v struct {
		Obj struct {
			ID int64 `json:"broadcastId"`
		} `json:"responseObject"`
	}
	if res.StatusCode != 200 || json.Unmarshal(raw, &v) != nil {
		log.Fatalf("create broadcast: %d %s", res.StatusCode, raw)
	}
	return v.Obj.ID
}

func state(url, key string) (string, int) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Basic "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		Obj struct {
			Status string `json:"status"`
			Totals struct {
				Sent int `json:"sent"`
			} `json:"totals"`
		} `json:"responseObject"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		log.Fatal(err)
	}
	return v.Obj.Status, v.Obj.Totals.Sent
}

func report(what string, r loadgen.Result) {
	if r.N == 0 && r.Errors == 0 {
		return
	}
	fmt.Printf("%-25s %6.0f/s  p50 %-9s p99 %-9s max %s  (%d errors)\n", what, r.PerSecond(),
		loadgen.Round(r.P(50)), loadgen.Round(r.P(99)), loadgen.Round(r.P(100)), r.Errors)
	if r.FirstErr != "" {
		fmt.Printf("  first error: %.200s\n", r.FirstErr)
	}
}

// peakRSS is the process's resident set high-water mark (Linux).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// schedLatencies is the Go runtime's histogram of how long goroutines waited, runnable,
// for a thread to run on: the bench prints it to tell waits for the CPU from waits for
// the database.
func schedLatencies() *metrics.Float64Histogram {
	m := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(m)
	return m[0].Value.Float64Histogram()
}

// gcWork is what the process had allocated, and how many collections it had run.
type gcWork struct{ allocated, collections uint64 }

func readGC() gcWork {
	m := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	return gcWork{allocated: m[0].Value.Uint64(), collections: m[1].Value.Uint64()}
}

// reportSched prints quantiles of the scheduling latencies since before.
func reportSched(label string, before *metrics.Float64Histogram) {
	after := schedLatencies()
	var total uint64
	counts := make([]uint64, len(after.Counts))
	for i := range counts {
		counts[i] = after.Counts[i] - before.Counts[i]
		total += counts[i]
	}
	q := func(f float64) time.Duration {
		var seen uint64
		for i, c := range counts {
			seen += c
			if float64(seen) >= f*float64(total) {
				upper := after.Buckets[i+1]
				if math.IsInf(upper, 1) {
					upper = after.Buckets[i] // the last bucket has no upper bound
				}
				return time.Duration(upper * 1e9)
			}
		}
		return 0
	}
	fmt.Printf("%-28s %d waits, p50 < %s, p99 < %s, p99.9 < %s\n", label, total, q(0.5), q(0.99), q(0.999))
}

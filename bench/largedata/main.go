// Command largedata measures the platform's read APIs and the trigger on a bot with a lot
// of stored data. It starts a Parley server in this process (SQLite in a temporary
// directory, or -db postgres://...), measures the v2 trigger's throughput on the empty
// database, bulk-loads users and messages into one bot with direct multi-row inserts in
// big transactions, then measures the users API (first, deep and last pages, selective
// and broad attribute filters, cursors) and the conversations API (a user with a long
// history: first, deep and last pages by number and by cursor; ordinary users), and the
// trigger's throughput again. The load generator shares the machine's cores with the
// server.
//
//	go run ./bench/largedata                                  # 1,000,000 messages, 100,000 users
//	go run ./bench/largedata -messages 100000 -users 10000    # smaller
//	go run ./bench/largedata -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/bench/internal/loadgen"
	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/store"
)

const benchFlow = `{"key": "bench", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "msg"}], "else": "msg"},
  {"id": "msg", "type": "message", "text": "Hi {{user.user_name}}, order {{order_id}} is on its way", "next": "done"},
  {"id": "done", "type": "end"}]}`

// Bulk-loaded users' phone numbers start here; the trigger phases use other numbers.
const loadedPhoneBase = 8000000000

var cities = []string{"Pune", "Mumbai", "Delhi", "Chennai", "Kolkata", "Jaipur", "Surat", "Indore", "Bhopal", "Nagpur"}

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	nMessages := flag.Int("messages", 1_000_000, "messages to store")
	nUsers := flag.Int("users", 100_000, "users to store")
	heavyShare := flag.Float64("heavy", 0.2, "share of the messages that belong to one user (the longest conversation); a second user has a tenth of that")
	duration := flag.Duration("duration", 5*time.Second, "load time per measurement")
	readers := flag.Int("concurrency", 4, "clients of the read APIs")
	triggerC := flag.Int("trigger-concurrency", 16, "clients of the trigger")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the read measurements to this file")
	triggerProfile := flag.String("trigger-cpuprofile", "", "write a CPU profile of the trigger's run on the loaded database to this file")
	flag.Parse()
	if *nUsers < 3 || *nMessages < *nUsers || *heavyShare <= 0 || *heavyShare > 0.5 {
		log.Fatal("need at least 3 users, as many messages as users, and -heavy in (0, 0.5]")
	}

	ctx := context.Background()
	srv := loadgen.Start(ctx, app.Config{DB: *db}, []string{benchFlow}, nil)
	defer srv.Stop()
	st := srv.Store()
	bot, err := st.Bot(ctx, srv.Bot.CustomerID, srv.Bot.BotKey)
	if err != nil {
		log.Fatal(err)
	}
	base := strings.TrimSuffix(srv.FlowURL, "flow/")
	base = strings.Replace(base, "/v2.0/", "/v1.0/", 1)
	fmt.Printf("db=%s users=%d messages=%d (one user has %.0f%%) duration=%s per measurement, %d read clients, %d trigger clients\n",
		st.Dialect(), *nUsers, *nMessages, *heavyShare*100, *duration, *readers, *triggerC)

	var phone atomic.Int64
	// A first second of triggers warms the connections and statement caches, which would
	// otherwise count against the empty database.
	triggers(ctx, srv, &phone, *triggerC, time.Second)
	empty := triggers(ctx, srv, &phone, *triggerC, *duration)
	fmt.Printf("trigger, empty database: %.0f accepted/s (p50 %s, p99 %s, %d errors)\n",
		empty.PerSecond(), loadgen.Round(empty.P(50)), loadgen.Round(empty.P(99)), empty.Errors)

	t0 := time.Now()
	heavyN, longN := load(ctx, st, bot.ID, *nUsers, *nMessages, *heavyShare)
	fmt.Printf("bulk load: %d users, %d messages in %s\n", *nUsers, *nMessages, time.Since(t0).Round(time.Second))
	if st.Dialect() == store.SQLite {
		// A bulk load leaves a WAL of a million frames, which every page read then looks
		// through until a checkpoint has copied it back and the WAL starts over; data that
		// accrues over months never piles up so. Wait for that checkpoint, as the server's
		// own would once it catches up.
		t0 = time.Now()
		var busy, frames, copied int
		if err := st.SQLiteWriter().QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("WAL checkpoint: %s (busy %d)\n", time.Since(t0).Round(time.Millisecond), busy)
	}
	if st.Dialect() == store.Postgres {
		// What autovacuum does after a bulk load: statistics, and the visibility map
		// that lets counts and skips read the index alone.
		t0 = time.Now()
		if _, err := st.Writer().Exec(ctx, `VACUUM ANALYZE`); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("VACUUM ANALYZE: %s\n", time.Since(t0).Round(time.Second))
	}

	conv := func(cuid string, params string) string {
		return base + "channel-user/" + cuid + "/conversations?" + params
	}
	users := func(params string) string { return base + "users?" + params }
	cursorAt := func(u string) string { // the next_cursor a page gives
		var env struct {
			ResponseObject struct {
				NextCursor *string `json:"next_cursor"`
			} `json:"responseObject"`
		}
		b := get(srv.Bot.APIKey, u)
		if err := json.Unmarshal(b, &env); err != nil || env.ResponseObject.NextCursor == nil {
			log.Fatalf("no next_cursor from %s: %s", u, b)
		}
		return url.QueryEscape(*env.ResponseObject.NextCursor)
	}
	type readCase struct {
		name string
		url  func() string
	}
	var cases []readCase
	for i, n := range []int{longN, heavyN} {
		cuid := fmt.Sprintf("91%010d", loadedPhoneBase+1-i)
		pages := (n + 499) / 500
		if pages < 3 {
			continue
		}
		mid := cursorAt(conv(cuid, fmt.Sprintf("page_number=%d", pages/2)))
		cases = append(cases,
			readCase{fmt.Sprintf("conversations, %d-message user, page 1 (500)", n), fixed(conv(cuid, ""))},
			readCase{fmt.Sprintf("  same user, page %d of %d", pages/2, pages), fixed(conv(cuid, fmt.Sprintf("page_number=%d", pages/2)))},
			readCase{fmt.Sprintf("  same user, last page (%d)", pages), fixed(conv(cuid, fmt.Sprintf("page_number=%d", pages)))},
			readCase{"  same user, by cursor mid-way", fixed(conv(cuid, "cursor="+mid))},
			readCase{"  same user, page_size=50, random page", func() string {
				return conv(cuid, fmt.Sprintf("page_size=50&page_number=%d", 1+rand.IntN(n/50)))
			}})
	}
	randomUser := func() string { return fmt.Sprintf("91%010d", loadedPhoneBase+2+rand.IntN(*nUsers-2)) }
	half := *nUsers / 2
	goldPages := (half + 99) / 100
	deepUsersCursor := cursorAt(users(fmt.Sprintf("attribute_name=plan&attribute_value=gold&page_number=%d", goldPages/2)))
	cases = append(cases,
		readCase{"conversations, random ordinary user", func() string { return conv(randomUser(), "") }},
		readCase{fmt.Sprintf("users, plan=gold (%d), page 1 (100)", half), fixed(users("attribute_name=plan&attribute_value=gold"))},
		readCase{fmt.Sprintf("  plan=gold, last page (%d)", goldPages), fixed(users(fmt.Sprintf("attribute_name=plan&attribute_value=gold&page_number=%d", goldPages)))},
		readCase{"  plan=gold, by cursor mid-way", fixed(users("attribute_name=plan&attribute_value=gold&cursor=" + deepUsersCursor))},
		readCase{fmt.Sprintf("users, city=random (%d each), random page", *nUsers/len(cities)), func() string {
			return users(fmt.Sprintf("attribute_name=city&attribute_value=%s&page_number=%d", cities[rand.IntN(len(cities))], 1+rand.IntN(max(1, *nUsers/len(cities)/100))))
		}},
		readCase{"users, cohort=random (1000 each), random page", func() string {
			return users(fmt.Sprintf("attribute_name=cohort&attribute_value=c%d&page_number=%d", rand.IntN(*nUsers/1000), 1+rand.IntN(10)))
		}},
		readCase{"users, user.phone_no=random (1 match)", func() string {
			return users("attribute_name=user.phone_no&attribute_value=%2B" + randomUser())
		}})
	stopProfile := loadgen.Profile(*cpuProfile)
	fmt.Printf("%-58s %8s %8s %8s %8s %9s %9s %6s\n", "read", "requests", "req/s", "p50", "p99", "max", "cpu/req", "errors")
	for _, c := range cases {
		cpu0 := cpuTime()
		res := loadgen.Run(ctx, *readers, *duration, func() (*http.Request, func([]byte) bool) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(), nil)
			if err != nil {
				log.Fatal(err)
			}
			req.Header.Set("Authorization", "Basic "+srv.Bot.APIKey)
			return req, nil
		})
		cpu := (cpuTime() - cpu0) / time.Duration(max(1, res.N+res.Errors))
		fmt.Printf("%-58s %8d %8.0f %8s %8s %9s %9s %6d\n", c.name, res.N, res.PerSecond(), loadgen.Round(res.P(50)), loadgen.Round(res.P(99)),
			loadgen.Round(res.P(100)), loadgen.Round(cpu), res.Errors)
		if res.FirstErr != "" {
			fmt.Printf("  first error: %.300s\n", res.FirstErr)
		}
	}

	stopProfile()
	stopProfile = loadgen.Profile(*triggerProfile)
	full := triggers(ctx, srv, &phone, *triggerC, *duration)
	stopProfile()
	fmt.Printf("trigger, loaded database: %.0f accepted/s (p50 %s, p99 %s, %d errors): %.0f%% of the empty database's\n",
		full.PerSecond(), loadgen.Round(full.P(50)), loadgen.Round(full.P(99)), full.Errors, 100*full.PerSecond()/empty.PerSecond())
}

// cpuTime is the CPU time this process (server and clients) has used: per request, a
// figure that other work on a shared machine does not inflate as it does latency. On
// PostgreSQL the database server's own CPU is not in it.
func cpuTime() time.Duration {
	d, ok := loadgen.ProcessCPU()
	if !ok {
		log.Fatal("the process's CPU time cannot be read on this system")
	}
	return d
}

func fixed(u string) func() string { return func() string { return u } }

// get fetches a URL with the bot's key and returns the body.
func get(key, u string) []byte {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Basic "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		log.Fatalf("%s: %d %s %v", u, resp.StatusCode, b, err)
	}
	return b
}

// triggers fires v2 triggers for new users for d, then waits until their runs completed.
func triggers(ctx context.Context, srv *loadgen.Server, phone *atomic.Int64, c int, d time.Duration) loadgen.Result {
	before, err := srv.Store().CountRuns(ctx, "completed")
	if err != nil {
		log.Fatal(err)
	}
	res := loadgen.Run(ctx, c, d, loadgen.Trigger(ctx, srv.FlowURL+"bench", srv.Bot.APIKey, func() int64 { return phone.Add(1) }, nil))
	for {
		done, err := srv.Store().CountRuns(ctx, "completed")
		if err != nil {
			log.Fatal(err)
		}
		if done >= before+res.N {
			return res
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// load stores users and messages in the bot with multi-row inserts, rows per statement
// and statements per transaction chosen to stay under both engines' parameter limits.
// One user (the first) gets heavyShare of the messages, the second a tenth of that; the
// others share the rest.
func load(ctx context.Context, st *store.Store, botID int64, nUsers, nMessages int, heavyShare float64) (heavyN, longN int) {
	const rowsPerInsert, insertsPerTx = 1000, 20
	now := time.Now().Add(-24 * time.Hour).UnixMilli()
	// Users.
	var firstID int64
	for start := 0; start < nUsers; start += rowsPerInsert * insertsPerTx {
		err := st.InTx(ctx, func(tx store.Tx) error {
			for s := start; s < min(start+rowsPerInsert*insertsPerTx, nUsers); s += rowsPerInsert {
				var q strings.Builder
				q.WriteString(`INSERT INTO users (bot_id, channel_user_id, channel, attrs, created_at, updated_at) VALUES `)
				args := []any{botID, now}
				for i := s; i < min(s+rowsPerInsert, nUsers); i++ {
					if i > s {
						q.WriteByte(',')
					}
					digits := fmt.Sprintf("91%010d", loadedPhoneBase+i)
					plan := "silver"
					if i%2 == 0 {
						plan = "gold"
					}
					attrs, _ := json.Marshal(map[string]string{"user.channel": "whatsapp", "user.phone_no": "+" + digits,
						"user.user_name": "User " + digits, "city": cities[i%len(cities)], "plan": plan, "cohort": fmt.Sprintf("c%d", i/1000)})
					args = append(args, digits, string(attrs))
					cast := ""
					if st.Dialect() == store.Postgres {
						cast = "::jsonb"
					}
					fmt.Fprintf(&q, "($1, $%d, 'whatsapp', $%d%s, $2, $2)", len(args)-1, len(args), cast)
				}
				if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Fatalf("load users: %v", err)
		}
	}
	if err := st.Reader().QueryRow(ctx, `SELECT id FROM users WHERE bot_id = $1 AND channel_user_id = $2`,
		botID, fmt.Sprintf("91%010d", loadedPhoneBase)).Scan(&firstID); err != nil {
		log.Fatalf("load users: %v", err)
	}
	// Messages: the heavy user's first, then round-robin over the others; ids assigned in
	// order, so user i's id is firstID+i.
	heavyN = int(float64(nMessages) * heavyShare)
	longN = heavyN / 10
	for start := 0; start < nMessages; start += rowsPerInsert * insertsPerTx {
		err := st.InTx(ctx, func(tx store.Tx) error {
			for s := start; s < min(start+rowsPerInsert*insertsPerTx, nMessages); s += rowsPerInsert {
				var q strings.Builder
				q.WriteString(`INSERT INTO messages (bot_id, user_id, channel, sender, type, text, status, created_at, updated_at) VALUES `)
				args := []any{botID}
				for i := s; i < min(s+rowsPerInsert, nMessages); i++ {
					if i > s {
						q.WriteByte(',')
					}
					user, at := firstID, now+int64(i)
					switch {
					case i >= heavyN+longN:
						user = firstID + 2 + int64((i-heavyN-longN)%(nUsers-2))
					case i >= heavyN:
						user = firstID + 1
					}
					sender, status := "bot", "delivered"
					if i%3 == 0 {
						sender, status = "user", "received"
					}
					args = append(args, user, sender, fmt.Sprintf("message %d: your order is on its way", i), status, at)
					n := len(args)
					fmt.Fprintf(&q, "($1, $%d, 'whatsapp', $%d, 'text', $%d, $%d, $%d, $%d)", n-4, n-3, n-2, n-1, n, n)
				}
				if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Fatalf("load messages: %v", err)
		}
	}
	return heavyN, longN
}

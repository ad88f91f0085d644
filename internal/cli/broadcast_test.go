package cli_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestBroadcastCommands(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			var nb newBot
			run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "news")
			// A broadcast scheduled for tomorrow, as the platform API would store it.
			ctx := context.Background()
			st := storetest.Open(t, db)
			b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
			if err != nil {
				t.Fatal(err)
			}
			when := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
			var req broadcast.V1Request
			if err := json.Unmarshal([]byte(`{"broadcastTitle": "tomorrow", "publishedOn": "`+when+`",
				"audience": {"rule": {"channels": ["whatsapp"], "channelUserIds": ["919019486731", "919019486732"]}},
				"payload": {"type": "direct", "content": [{"type": "text", "data": {"message": "hi"}}]}}`), &req); err != nil {
				t.Fatal(err)
			}
			plan, err := broadcast.PlanV1(req, time.Now(), broadcast.DefaultMax)
			if err != nil {
				t.Fatal(err)
			}
			svc := broadcast.New(broadcast.Config{Store: st})
			v, _, err := svc.Create(ctx, b.ID, plan, "")
			if err != nil {
				t.Fatal(err)
			}
			id := strconv.FormatInt(v["broadcastId"].(int64), 10)
			bot := []string{"--db", db, "--customer", strconv.FormatInt(nb.CustomerID, 10), "--bot", nb.BotKey}

			var list struct {
				Broadcasts []struct {
					ID     int64  `json:"broadcastId"`
					Title  string `json:"broadcastTitle"`
					Status string `json:"status"`
				} `json:"broadcasts"`
			}
			run(t, &list, append([]string{"broadcast", "list"}, bot...)...)
			if len(list.Broadcasts) != 1 || list.Broadcasts[0].Title != "tomorrow" || list.Broadcasts[0].Status != "SCHEDULED" {
				t.Fatalf("list = %+v", list)
			}
			var shown struct {
				Status string `json:"status"`
				Totals struct {
					Recipients int `json:"recipients"`
					Cancelled  int `json:"cancelled"`
				} `json:"totals"`
			}
			run(t, &shown, append([]string{"broadcast", "show", "--id", id}, bot...)...)
			if shown.Status != "SCHEDULED" || shown.Totals.Recipients != 2 {
				t.Fatalf("show = %+v", shown)
			}
			run(t, &shown, append([]string{"broadcast", "cancel", "--id", id}, bot...)...)
			if shown.Status != "CANCELLED" || shown.Totals.Cancelled != 2 {
				t.Fatalf("cancel = %+v", shown)
			}
			runFails(t, 2, "--id is required", append([]string{"broadcast", "show"}, bot...)...)
			runFails(t, 1, "broadcast not found", append([]string{"broadcast", "show", "--id", "999"}, bot...)...)
			runFails(t, 2, "unknown subcommand", "broadcast", "send")
		})
	}
}

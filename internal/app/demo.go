package app

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/store"
)

// demoFlow is the flow `serve --demo` installs: a decision, a message, an end.
//
//go:embed demo_flow.json
var demoFlow []byte

const demoFlowKey = "order_update"

// seedDemo makes sure the demo customer, bot and flow exist, mints a fresh API key (keys
// are shown once, so a restart cannot reprint the old one) and prints how to use them.
func seedDemo(ctx context.Context, st *store.Store, a *auth.Service, cfg Config, out io.Writer) error {
	c, _, err := st.EnsureCustomer(ctx, "demo")
	if err != nil {
		return err
	}
	bots, err := st.Bots(ctx, c.ID)
	if err != nil {
		return err
	}
	var botKey, apiKey string
	if len(bots) == 0 {
		nb, err := a.CreateBotFor(ctx, c.ID, "Demo bot")
		if err != nil {
			return err
		}
		botKey, apiKey = nb.BotKey, nb.APIKey
	} else {
		k, err := a.CreateKey(ctx, c.ID, bots[0].Key)
		if err != nil {
			return err
		}
		botKey, apiKey = bots[0].Key, k.APIKey
	}
	b, err := st.Bot(ctx, c.ID, botKey)
	if err != nil {
		return err
	}
	if _, err := st.FlowByKey(ctx, b.ID, demoFlowKey); errors.Is(err, store.ErrNotFound) {
		if _, err := catalog.Import(ctx, st, b.ID, demoFlow); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	base := "http://" + demoHost(cfg.Addr)
	_, err = fmt.Fprintf(out, `Parley demo is ready.
  customer id: %d
  bot key:     %s
  API key:     %s   (shown once)

Trigger the demo flow and wait for it to finish:
  curl -s -X POST '%s/bot-api/v2.0/customer/%d/bot/%s/flow/%s?wait=true' \
    -H 'Authorization: Basic %s' -H 'Content-Type: application/json' \
    -d '{"user.channel": "whatsapp", "user.phone_no": "919876543210", "user_type": "vip", "order_id": "A-1001"}'

Read the conversation it produced:
  curl -s '%s/bot-api/v1.0/customer/%d/bot/%s/channel-user/919876543210/conversations' \
    -H 'Authorization: Basic %s'

Open the console and sign in with the admin token:
  %s/console/
  admin token: %s
`, c.ID, botKey, apiKey, base, c.ID, botKey, demoFlowKey, apiKey, base, c.ID, botKey, apiKey, base, cfg.AdminToken)
	return err
}

// newDemoToken makes an admin token for a demo started without one.
func newDemoToken() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// demoHost turns a listen address into one a curl on the same machine can reach.
func demoHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

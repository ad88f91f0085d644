package cli

import (
	"context"

	"github.com/parleyhq/parley/internal/broadcast"
)

// broadcastCmd is `parley broadcast list|show|cancel`: a bot's broadcasts, as the
// platform API shows them. Cancelling works beside a running server: its fan-out stops
// at the next batch.
func broadcastCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "broadcast", "list", "show", "cancel")
	if err != nil {
		return err
	}
	fs := flags(env, "broadcast "+sub)
	bf := addBotFlags(fs, dbFlag(fs, env))
	id := fs.Int64("id", 0, "broadcast id (show, cancel)")
	limit := fs.Int("limit", 50, "how many broadcasts to list, newest first (list)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if sub != "list" && *id <= 0 {
		return usageError{"--id is required: see 'parley broadcast list'"}
	}
	if *limit < 1 || *limit > 1000 {
		return usageError{"--limit must be from 1 to 1000"}
	}
	st, b, err := bf.lookupBot(ctx, env)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := broadcast.New(broadcast.Config{Store: st})
	switch sub {
	case "list":
		vs, err := svc.List(ctx, b.ID, 0, *limit)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"broadcasts": vs})
	case "show":
		v, err := svc.Get(ctx, b.ID, *id, false)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, v)
	default:
		v, err := svc.Cancel(ctx, b.ID, *id)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, v)
	}
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/store"
)

// httpStepFlags are the settings of outbound http-step calls, shared by serve and
// httpstep test.
type httpStepFlags struct {
	rate  *string
	allow *string
}

func addHTTPStepFlags(fs *flag.FlagSet, env Env) httpStepFlags {
	return httpStepFlags{
		rate: fs.String("http-rate", envOr(env, "PARLEY_HTTP_RATE", strconv.Itoa(httpstep.DefaultRate)),
			"HTTP-step calls per minute of an account that has no rate of its own (env PARLEY_HTTP_RATE)"),
		allow: fs.String("http-allow", env.Getenv("PARLEY_HTTP_ALLOW"),
			"comma-separated CIDRs, IPs and host names http steps may reach although they are loopback, private or link-local, e.g. 127.0.0.1/32; with a :port, only that port, e.g. 127.0.0.1:9100 (env PARLEY_HTTP_ALLOW)"),
	}
}

// values checks the flags: a positive rate, and allow entries the client understands.
func (h httpStepFlags) values() (rate int, allow []string, err error) {
	rate, err = strconv.Atoi(strings.TrimSpace(*h.rate))
	if err != nil || rate < 1 {
		return 0, nil, usageError{fmt.Sprintf("--http-rate %q: want a positive number of calls per minute", *h.rate)}
	}
	for _, e := range strings.Split(*h.allow, ",") {
		if e = strings.TrimSpace(e); e != "" {
			allow = append(allow, e)
		}
	}
	if _, err := httpstep.NewClient(httpstep.Options{Allow: allow}); err != nil {
		return 0, nil, usageError{"--http-allow: " + err.Error()}
	}
	return rate, allow, nil
}

// smtpFlag adds --smtp-url. Its default is not taken from the environment here, so that
// -h never prints the password the URL may hold; smtpValue falls back to it.
func smtpFlag(fs *flag.FlagSet) *string {
	return fs.String("smtp-url", "", "SMTP server for http steps' alert mail, smtp[s]://[user:pass@]host[:port][?from=...]; empty sends none (env PARLEY_SMTP_URL)")
}

func smtpValue(flagValue string, env Env) string {
	if flagValue != "" {
		return flagValue
	}
	return env.Getenv("PARLEY_SMTP_URL")
}

// attrFlag collects repeated --attr name=value.
type attrFlag map[string]string

func (a attrFlag) String() string { return "" }

func (a attrFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || !flow.ValidAttributeName(name) {
		return fmt.Errorf("%q: want name=value with a valid attribute name", v)
	}
	a[name] = value
	return nil
}

// httpStepCmd is `parley httpstep test|logs|state|remap|reset-alert`: the admin actions
// on one http node of a bot's flow.
func httpStepCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "httpstep", "test", "logs", "state", "remap", "reset-alert")
	if err != nil {
		return err
	}
	fs := flags(env, "httpstep "+sub)
	bf := addBotFlags(fs, dbFlag(fs, env))
	flowKey := fs.String("flow", "", "flow key")
	nodeID := fs.String("node", "", "id of the http node")
	var hf httpStepFlags
	attrs := attrFlag{}
	var logID *int64
	switch sub {
	case "test":
		hf = addHTTPStepFlags(fs, env)
		fs.Var(attrs, "attr", "a sample attribute, name=value (repeatable)")
	case "logs":
		logID = fs.Int64("id", 0, "show this log in full (default: list the last calls)")
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if err := errors.Join(require("flow", *flowKey), require("node", *nodeID)); err != nil {
		return usageError{err.Error()}
	}
	if logID != nil && *logID < 0 {
		return usageError{"--id must be a log id from 'parley httpstep logs'"}
	}
	rate, allow := httpstep.DefaultRate, []string(nil)
	if sub == "test" {
		if rate, allow, err = hf.values(); err != nil {
			return err
		}
	}

	st, b, err := bf.lookupBot(ctx, env)
	if err != nil {
		return err
	}
	defer st.Close()
	client, err := httpstep.NewClient(httpstep.Options{Allow: allow})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	// No queue and no mailer: a test call sends no alert mail.
	svc, err := httpstep.NewService(httpstep.Config{Store: st, Client: client, DefaultRate: rate})
	if err != nil {
		return err
	}
	defer svc.Close()
	step, err := svc.Step(ctx, b.CustomerID, b.ID, *flowKey, *nodeID)
	if err != nil {
		return err
	}

	switch sub {
	case "test":
		res, err := svc.Test(ctx, step, attrs)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, res)
	case "logs":
		if *logID > 0 {
			l, err := svc.Log(ctx, step, *logID)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("node %q has no log %d (only its last %d calls are kept)", *nodeID, *logID, store.HTTPStepLogsKept)
			}
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, l)
		}
		logs, err := svc.Logs(ctx, step)
		if err != nil {
			return err
		}
		state, err := svc.State(ctx, step)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"logs": logs, "structure_changed": state.StructureChanged, "message": state.Message})
	case "remap":
		state, err := svc.Remap(ctx, step)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, state)
	case "reset-alert":
		state, err := svc.ResetMailTimeout(ctx, step)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, state)
	default:
		state, err := svc.State(ctx, step)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, state)
	}
}

// Package cli is the parley command line. Every command but serve prints JSON on stdout
// so scripts can use it; errors go to stderr as {"error": "..."} with a non-zero exit.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/store"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Env holds the process's outside world, so tests can run commands in-process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the server", serve},
		"migrate": {"apply database migrations", migrate},
		"bot":     {"bot create: create a bot (and its customer) with a first API key", botCmd},
		"key":     {"key create|list|revoke|regenerate: manage a bot's API keys", keyCmd},
		"flow":    {"flow import|export|validate: manage flow documents", flowCmd},
		"account": {"account set: change a customer account's settings", accountCmd},
		"user":    {"user create|list|delete|passwd: console accounts (operators and customer users)", userCmd},
		"channel": {"channel set|show: a bot's channel adapter and credentials", channelCmd},

		"broadcast": {"broadcast list|show|cancel: a bot's broadcasts", broadcastCmd},

		"httpstep": {"httpstep test|logs|state|remap|reset-alert: an http node's test call, logs and alerts", httpStepCmd},
		"secrets":  {"secrets rotate: re-encrypt stored secrets under the first key of PARLEY_SECRET_KEY", secretsCmd},
	}
}

// Run executes the command line args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "parley: unknown command %q\n", args[0])
		usage(env.Stderr, cmds)
		return exitUsage
	}
	err := c.run(ctx, env, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "parley %s: %s\n", args[0], ue.msg)
		return exitUsage
	default:
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		fmt.Fprintln(env.Stderr, string(b))
		return exitError
	}
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: parley <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'parley <command> -h' for a command's flags.")
}

// flags is a flag set that reports errors instead of exiting.
func flags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// dbFlag adds --db, defaulting to PARLEY_DB and then parley.db.
func dbFlag(fs *flag.FlagSet, env Env) *string {
	def := env.Getenv("PARLEY_DB")
	if def == "" {
		def = "parley.db"
	}
	return fs.String("db", def, "database: a SQLite file path, or a postgres:// URL (env PARLEY_DB)")
}

// openDB opens and migrates the database for a one-off command, with the secret keys
// of PARLEY_SECRET_KEY or, on SQLite, of the key file beside the database. On
// PostgreSQL without PARLEY_SECRET_KEY, commands that read or write a secret fail,
// saying so; the others work.
func openDB(ctx context.Context, env Env, dsn string) (*store.Store, error) {
	return openDBWithKeys(ctx, dsn, env.Getenv("PARLEY_SECRET_KEY"))
}

func openDBWithKeys(ctx context.Context, dsn, keys string) (*store.Store, error) {
	kr, _, err := app.SecretKeys(dsn, keys)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{MaxConns: 2, Secrets: kr})
	if err != nil {
		return nil, err
	}
	if err := app.Migrate(ctx, st); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func require(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return usageError{"--" + name + " is required"}
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/console"
	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestUserCommands(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			var nb newBot
			run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
			withStdin := func(stdin string, args ...string) (string, int, string) {
				var stdout, stderr bytes.Buffer
				code := cli.Run(context.Background(), args, cli.Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
					Getenv: func(string) string { return "" }})
				return stdout.String(), code, stderr.String()
			}

			// An operator with a generated password, shown once.
			var ops struct {
				ID         int64  `json:"id"`
				Email      string `json:"email"`
				Role       string `json:"role"`
				CustomerID *int64 `json:"customer_id"`
				Password   string `json:"password"`
			}
			run(t, &ops, "user", "create", "--db", db, "--email", "Ops@Example.com")
			if ops.Email != "ops@example.com" || ops.Role != "operator" || ops.CustomerID != nil || len(ops.Password) < console.MinPasswordLength {
				t.Fatalf("operator = %+v", ops)
			}
			// A customer user whose password comes from stdin, never from a flag.
			out, code, stderr := withStdin("correct horse battery\n", "user", "create", "--db", db, "--email", "ann@acme.example",
				"--customer", strconv.FormatInt(nb.CustomerID, 10), "--password-stdin")
			if code != 0 || strings.Contains(out, "password") || !strings.Contains(out, `"role": "customer"`) {
				t.Fatalf("create from stdin: exit %d %s %s", code, out, stderr)
			}
			if _, code, stderr := withStdin("short\n", "user", "create", "--db", db, "--email", "x@example.com", "--password-stdin"); code != 1 || !strings.Contains(stderr, "password") {
				t.Fatalf("short password: exit %d %s", code, stderr)
			}
			runFails(t, 1, "already exists", "user", "create", "--db", db, "--email", "ann@acme.example")
			runFails(t, 1, "does not exist", "user", "create", "--db", db, "--email", "z@example.com", "--customer", "99999")
			runFails(t, 2, "--email is required", "user", "create", "--db", db)

			var list struct {
				Users []struct {
					Email string `json:"email"`
				} `json:"users"`
			}
			run(t, &list, "user", "list", "--db", db)
			if len(list.Users) != 2 || list.Users[0].Email != "ops@example.com" || list.Users[1].Email != "ann@acme.example" {
				t.Fatalf("list = %+v", list)
			}
			// passwd: the new password signs in, the old one no longer does.
			svc := console.New(console.Config{Store: storetest.Open(t, db)})
			if _, err := svc.SignInWithPassword(context.Background(), "ann@acme.example", "correct horse battery", "test"); err != nil {
				t.Fatalf("sign in before passwd: %v", err)
			}
			var changed struct {
				Password string `json:"password"`
			}
			run(t, &changed, "user", "passwd", "--db", db, "--email", "ann@acme.example")
			if _, err := svc.SignInWithPassword(context.Background(), "ann@acme.example", changed.Password, "test"); err != nil {
				t.Fatalf("sign in with the new password: %v", err)
			}
			if _, err := svc.SignInWithPassword(context.Background(), "ann@acme.example", "correct horse battery", "test"); err == nil {
				t.Fatal("the old password still signs in")
			}
			runFails(t, 1, "no such console user", "user", "passwd", "--db", db, "--email", "who@example.com")

			var del map[string]any
			run(t, &del, "user", "delete", "--db", db, "--email", "ann@acme.example")
			if del["deleted"] != true {
				t.Fatalf("delete = %v", del)
			}
			run(t, &list, "user", "list", "--db", db)
			if b, _ := json.Marshal(list); strings.Contains(string(b), "ann@") {
				t.Fatalf("after delete: %s", b)
			}
		})
	}
}

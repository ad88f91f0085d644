package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/parleyhq/parley/internal/console"
)

// userCmd is `parley user create|list|delete|passwd`: console accounts. A password is
// read from stdin with --password-stdin (never from a flag, which other users of the
// machine could read in the process list); without it one is generated and printed once.
func userCmd(ctx context.Context, env Env, args []string) error {
	sub, rest, err := subcommand(args, "user", "create", "list", "delete", "passwd")
	if err != nil {
		return err
	}
	fs := flags(env, "user "+sub)
	db := dbFlag(fs, env)
	var email *string
	var customer *int64
	var fromStdin *bool
	if sub != "list" {
		email = fs.String("email", "", "the account's email address")
	}
	if sub == "create" {
		customer = fs.Int64("customer", 0, "customer id the account belongs to (omit for an operator, who sees every customer)")
	}
	if sub == "create" || sub == "passwd" {
		fromStdin = fs.Bool("password-stdin", false, "read the password from the first line of stdin (default: generate one and print it)")
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if email != nil {
		if err := require("email", *email); err != nil {
			return err
		}
	}
	if customer != nil && *customer < 0 {
		return usageError{"--customer must be a customer id"}
	}
	var password string
	generated := false
	if fromStdin != nil {
		if password, generated, err = readPassword(env.Stdin, *fromStdin); err != nil {
			return err
		}
	}
	st, err := openDB(ctx, env, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := console.New(console.Config{Store: st})
	switch sub {
	case "list":
		us, err := svc.Users(ctx)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"users": us})
	case "create":
		var cid *int64
		if *customer > 0 {
			cid = customer
		}
		u, err := svc.CreateUser(ctx, *email, password, cid)
		if err != nil {
			return err
		}
		return printJSON(env.Stdout, withPassword(u, password, generated))
	}
	u, err := svc.UserByEmail(ctx, *email)
	if err != nil {
		return err
	}
	if sub == "delete" {
		if err := svc.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		return printJSON(env.Stdout, map[string]any{"id": u.ID, "email": u.Email, "deleted": true})
	}
	if err := svc.SetPassword(ctx, u.ID, password); err != nil {
		return err
	}
	return printJSON(env.Stdout, withPassword(u, password, generated))
}

// readPassword takes the first line of stdin, or makes up a password.
func readPassword(stdin io.Reader, fromStdin bool) (password string, generated bool, err error) {
	if !fromStdin {
		return console.RandomPassword(), true, nil
	}
	if stdin == nil {
		return "", false, errors.New("--password-stdin: no standard input")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), false, nil
}

// withPassword adds a generated password to the output, the one time it is shown.
func withPassword(u console.User, password string, generated bool) any {
	if !generated {
		return u
	}
	return struct {
		console.User
		Password string `json:"password"`
	}{u, password}
}

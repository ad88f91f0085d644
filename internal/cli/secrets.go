package cli

import (
	"context"
	"flag"
	"strings"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/secret"
)

// secretKeyFlag adds --secret-key. Its default is not taken from the environment here,
// so that -h never prints the key; secretKeyValue falls back to PARLEY_SECRET_KEY.
func secretKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("secret-key", "", `keys that encrypt secrets at rest, base64 or hex of 32 bytes, comma-separated: "new,old" while rotating (env PARLEY_SECRET_KEY; default on SQLite: the key file beside the database)`)
}

// secretKeyValue is the flag's value or PARLEY_SECRET_KEY, checked.
func secretKeyValue(flagValue string, env Env) (string, error) {
	v := flagValue
	if v == "" {
		v = env.Getenv("PARLEY_SECRET_KEY")
	}
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	if _, err := secret.Parse(v); err != nil {
		return "", usageError{"--secret-key: " + err.Error()}
	}
	return v, nil
}

// secretsCmd is `parley secrets rotate`: re-encrypt every stored secret under the first
// key, after which the other keys can be dropped.
func secretsCmd(ctx context.Context, env Env, args []string) error {
	_, rest, err := subcommand(args, "secrets", "rotate")
	if err != nil {
		return err
	}
	fs := flags(env, "secrets rotate")
	db := dbFlag(fs, env)
	secretKey := secretKeyFlag(fs)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	keys, err := secretKeyValue(*secretKey, env)
	if err != nil {
		return err
	}
	st, err := openDBWithKeys(ctx, *db, keys)
	if err != nil {
		return err
	}
	defer st.Close()
	if !st.Secrets().Configured() {
		return usageError{secret.ErrNoKey.Error() + " (or pass --secret-key)"}
	}
	channels, err := registry.Reencrypt(ctx, st)
	if err != nil {
		return err
	}
	flows, err := catalog.Reencrypt(ctx, st)
	if err != nil {
		return err
	}
	drafts, err := catalog.ReencryptDrafts(ctx, st)
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, map[string]any{"key_id": st.Secrets().PrimaryID(), "keys": st.Secrets().IDs(),
		"channel_settings_rewritten": channels, "flow_versions_rewritten": flows, "drafts_rewritten": drafts})
}

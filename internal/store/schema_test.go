package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// column is a column as both engines can describe it.
type column struct {
	family  string // integer, text, bytes, real
	notNull bool
}

// index is a named index: its table, whether it is unique, and whether it is partial.
type index struct {
	table           string
	unique, partial bool
}

// dbSchema is what the migrations built: columns by table, explicitly named indexes, and
// the primary keys and unique constraints, which each engine names its own way
// ("users: unique (bot_id, channel_user_id)").
type dbSchema struct {
	tables  map[string]map[string]column
	indexes map[string]index
	keys    map[string]bool
}

// dialectOnlyIndexes are the indexes one engine has and the other cannot: the reason is
// the engine's own kind of index.
var dialectOnlyIndexes = map[string]string{}

// TestMigrationsAgree compares the schemas the two migration sets build: the same tables,
// the same columns with the same type family and nullability, the same named indexes, and
// the same primary keys and unique constraints.
func TestMigrationsAgree(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: nothing to compare the SQLite schema with", storetest.EnvPostgres)
	}
	lite := sqliteSchema(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	pg := postgresSchema(t, storetest.Open(t, storetest.PostgresDSN(t)))

	if len(lite.tables) < 10 {
		t.Fatalf("SQLite has only %d tables: %v", len(lite.tables), slices.Sorted(maps.Keys(lite.tables)))
	}
	t.Logf("SQLite: %d tables, %d named indexes, %d keys; PostgreSQL: %d tables, %d named indexes, %d keys",
		len(lite.tables), len(lite.indexes), len(lite.keys), len(pg.tables), len(pg.indexes), len(pg.keys))
	for _, name := range union(lite.tables, pg.tables) {
		lc, lok := lite.tables[name]
		pc, pok := pg.tables[name]
		if !lok || !pok {
			t.Errorf("table %s: on SQLite %v, on PostgreSQL %v", name, lok, pok)
			continue
		}
		for _, col := range union(lc, pc) {
			l, lok := lc[col]
			p, pok := pc[col]
			switch {
			case !lok || !pok:
				t.Errorf("column %s.%s: on SQLite %v, on PostgreSQL %v", name, col, lok, pok)
			case l != p:
				t.Errorf("column %s.%s: SQLite %+v, PostgreSQL %+v", name, col, l, p)
			}
		}
	}
	for _, name := range union(lite.indexes, pg.indexes) {
		l, lok := lite.indexes[name]
		p, pok := pg.indexes[name]
		switch {
		case dialectOnlyIndexes[name] != "":
			if lok && pok {
				t.Errorf("index %s is on both engines: drop it from dialectOnlyIndexes", name)
			}
		case !lok || !pok:
			t.Errorf("index %s: on SQLite %v, on PostgreSQL %v", name, lok, pok)
		case l != p:
			t.Errorf("index %s: SQLite %+v, PostgreSQL %+v", name, l, p)
		}
	}
	for _, k := range union(lite.keys, pg.keys) {
		if !lite.keys[k] || !pg.keys[k] {
			t.Errorf("%s: on SQLite %v, on PostgreSQL %v", k, lite.keys[k], pg.keys[k])
		}
	}
}

func union[V any](a, b map[string]V) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return slices.Sorted(maps.Keys(m))
}

// family maps a column type of either engine to a family both share.
func family(t *testing.T, typ string) string {
	t.Helper()
	switch strings.ToLower(typ) {
	case "integer", "bigint", "smallint", "int", "int8", "int4", "int2", "boolean":
		return "integer"
	case "text", "character varying", "varchar", "jsonb", "json":
		return "text"
	case "blob", "bytea":
		return "bytes"
	case "real", "double precision", "numeric":
		return "real"
	}
	t.Errorf("column type %q has no family: add it to family()", typ)
	return typ
}

// gooseTable is the migration tool's own bookkeeping, which differs by design.
const gooseTable = "goose_db_version"

func sqliteSchema(t *testing.T, st *store.Store) dbSchema {
	ctx := context.Background()
	s := dbSchema{tables: map[string]map[string]column{}, indexes: map[string]index{}, keys: map[string]bool{}}
	for _, table := range queryStrings(t, st, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?`, gooseTable) {
		rows, err := st.Reader().Query(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		cols := map[string]column{}
		var pk []string
		for rows.Next() {
			var name, typ string
			var notNull, pkPos int
			if err := rows.Scan(&name, &typ, &notNull, &pkPos); err != nil {
				t.Fatal(err)
			}
			// A primary key column is never NULL on PostgreSQL; SQLite reports it nullable.
			cols[name] = column{family: family(t, typ), notNull: notNull == 1 || pkPos > 0}
			if pkPos > 0 {
				pk = append(pk, fmt.Sprintf("%03d%s", pkPos, name))
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		s.tables[table] = cols
		if len(pk) > 0 {
			slices.Sort(pk)
			for i := range pk {
				pk[i] = pk[i][3:]
			}
			s.keys[keyName(table, "primary key", strings.Join(pk, ", "))] = true
		}
		for _, u := range queryStrings(t, st, `SELECT group_concat(name, ', ') FROM
			(SELECT il.name AS ix, ii.name FROM pragma_index_list(?) il, pragma_index_info(il.name) ii WHERE il.origin = 'u' ORDER BY il.name, ii.seqno)
			GROUP BY ix`, table) {
			s.keys[keyName(table, "unique", u)] = true
		}
	}
	// Named indexes: those a migration created (SQLite names the ones behind UNIQUE and
	// PRIMARY KEY constraints itself, sqlite_autoindex_*, and stores no SQL for them).
	rows, err := st.Reader().Query(ctx, `SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table, sql string
		if err := rows.Scan(&name, &table, &sql); err != nil {
			t.Fatal(err)
		}
		upper := strings.ToUpper(sql)
		s.indexes[name] = index{table: table, unique: strings.HasPrefix(upper, "CREATE UNIQUE"), partial: strings.Contains(upper, " WHERE ")}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

func postgresSchema(t *testing.T, st *store.Store) dbSchema {
	ctx := context.Background()
	s := dbSchema{tables: map[string]map[string]column{}, indexes: map[string]index{}, keys: map[string]bool{}}
	rows, err := st.Reader().Query(ctx, `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> $1`, gooseTable)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, typ, nullable string
		if err := rows.Scan(&table, &name, &typ, &nullable); err != nil {
			t.Fatal(err)
		}
		if s.tables[table] == nil {
			s.tables[table] = map[string]column{}
		}
		s.tables[table][name] = column{family: family(t, typ), notNull: nullable == "NO"}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, k := range queryStrings(t, st, `SELECT t.relname || '|' || CASE k.contype WHEN 'p' THEN 'primary key' ELSE 'unique' END || '|' ||
			array_to_string(ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, o)
				JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o), ', ')
		FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
		WHERE k.contype IN ('p', 'u') AND t.relnamespace = current_schema()::regnamespace AND t.relname <> $1`, gooseTable) {
		parts := strings.SplitN(k, "|", 3)
		s.keys[keyName(parts[0], parts[1], parts[2])] = true
	}
	// Named indexes: those a migration created, not the ones behind constraints.
	rows, err = st.Reader().Query(ctx, `SELECT c.relname, t.relname, i.indisunique, i.indpred IS NOT NULL
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
		WHERE t.relnamespace = current_schema()::regnamespace
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		var ix index
		if err := rows.Scan(&name, &table, &ix.unique, &ix.partial); err != nil {
			t.Fatal(err)
		}
		ix.table = table
		s.indexes[name] = ix
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

func keyName(table, kind, cols string) string {
	return fmt.Sprintf("%s: %s (%s)", table, kind, cols)
}

func queryStrings(t *testing.T, st *store.Store, q string, args ...any) []string {
	t.Helper()
	rows, err := st.Reader().Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", q, err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

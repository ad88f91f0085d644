package store

import (
	"fmt"
	"sync"
)

// Binding a statement's parameters in the SQLite driver asks SQLite for each
// parameter's name, and SQLite finds the name of a numbered parameter ($1, $2, ...) by
// a linear search of the statement's parameter list: binding is quadratic in the number
// of parameters. For the multi-row statements of a broadcast's fan-out (hundreds of
// parameters) that was 15 % of the process's CPU. Anonymous parameters (?) have no
// names to search, so statements with many parameters are rewritten to them, with the
// arguments repeated and ordered as their placeholders occur.
const positionalFrom = 16

// positionalQuery is a query rewritten to anonymous parameters: args[order[k]] is the
// argument of its k-th placeholder.
type positionalQuery struct {
	query string
	order []int
}

// positionalQueries caches the rewrites; queries are constants of this package or
// built from them by row count, so the cache stays small.
type positionalQueries struct{ m sync.Map }

func (p *positionalQueries) rewrite(query string, args []any) (string, []any, error) {
	var pq *positionalQuery
	if v, ok := p.m.Load(query); ok {
		pq = v.(*positionalQuery)
	} else {
		q, order := toPositional(query)
		pq = &positionalQuery{query: q, order: order}
		p.m.Store(query, pq)
	}
	out := make([]any, len(pq.order))
	for k, i := range pq.order {
		if i < 0 || i >= len(args) {
			return "", nil, fmt.Errorf("query has parameter $%d but %d arguments", i+1, len(args))
		}
		out[k] = args[i]
	}
	return pq.query, out, nil
}

// toPositional replaces every $N outside string literals, quoted identifiers and
// comments with ?, and returns the argument index (N-1) of each in order.
func toPositional(query string) (string, []int) {
	out := make([]byte, 0, len(query))
	var order []int
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			end := i + 1
			for end < len(query) && query[end] != c {
				end++
			}
			end = min(end+1, len(query)) // a doubled quote is read as two literals, which is the same text
			out = append(out, query[i:end]...)
			i = end
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := i
			for end < len(query) && query[end] != '\n' {
				end++
			}
			out = append(out, query[i:end]...)
			i = end
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := i + 2
			for end+1 < len(query) && !(query[end] == '*' && query[end+1] == '/') {
				end++
			}
			end = min(end+2, len(query))
			out = append(out, query[i:end]...)
			i = end
		case c == '$' && i+1 < len(query) && query[i+1] >= '1' && query[i+1] <= '9':
			n, end := 0, i+1
			for end < len(query) && query[end] >= '0' && query[end] <= '9' {
				if n < 1<<20 { // larger numbers are no argument's anyway; stay positive
					n = n*10 + int(query[end]-'0')
				}
				end++
			}
			out = append(out, '?')
			order = append(order, n-1)
			i = end
		default:
			out = append(out, c)
			i++
		}
	}
	return string(out), order
}

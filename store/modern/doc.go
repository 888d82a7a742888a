// Package modern checks that chatwarden's SQL also runs on current
// ClickHouse. Its test applies every migration on ClickHouse 26.x through the
// embedded engine (libchdb.so from the npm package @chdb/lib-linux-x64-gnu,
// loaded by github.com/chdb-io/chdb-go), then replays every distinct query the
// rest of the test suite ran against the ClickHouse 18.16 test server, as
// recorded in that server's system.query_log.
//
// Run it after the other tests, with the conformance build tag:
//
//	go test -tags conformance ./store/modern
package modern

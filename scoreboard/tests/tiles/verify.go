// verify.go — a tile client nobody at Scoreboard wrote the library of: it verifies a C2SP
// tlog-tiles log (https://c2sp.org/tlog-tiles) with Go's golang.org/x/mod/sumdb/tlog and
// sumdb/note, reading only <url>/checkpoint and <url>/tile/…; scoreboard's tests build and run
// it (tests/it/audit.rs).
//
// Build it offline with Debian's golang-go and golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o verify verify.go
//
// Usage:
//
//	./verify -url http://127.0.0.1:8080 -vkey 'example.com/log+1234abcd+AZ...' [-checkpoint cp.txt] [-origin example.com/log]
//
// Checks: checkpoint signature; TreeHash(N) via TileHashReader == checkpoint root;
// every entry i in the entry bundles hashes (RecordHash = SHA-256(0x00||entry)) to
// level-0 hash i as returned by TileHashReader.ReadHashes; sample inclusion proofs
// (ProveRecord/CheckRecord) and a consistency proof (ProveTree/CheckTree) N/2 -> N.
//
// IMPORTANT: x/mod's tileHashReader.ReadHashes (v0.7.0 and current upstream) does
// not authenticate every fetched tile against its parent: its loop
// "for i := len(stx); i < len(tiles); i++" starts at the number of subtree
// indexes, not the number of distinct tiles they map to, so the first few
// non-root tiles (e.g. tile/0/100 for N=70000) are returned unchecked. Hence
// this program additionally rebuilds the whole tree from the entries and
// (a) compares its root with the checkpoint and (b) compares every served
// hash tile byte-for-byte with the rebuilt one. That part is sound.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8 // C2SP tiles are always height 8 (256 hashes / 8192 bytes when full)

// c2spPath maps a tlog.Tile to its C2SP path (relative to the log prefix).
// tlog.Tile.Path() is "tile/8/<L>/<N>[.p/<W>]" (height included, "data" for L=-1);
// C2SP omits the height and uses "entries" for the data level.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if t.L == -1 {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

var errNotFound = errors.New("404 not found")

func get(url string) ([]byte, error) {
	// Go's default transport adds "Accept-Encoding: gzip" and transparently
	// decompresses, which covers C2SP's "gzip with no negotiation" case.
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("GET %s: %w", url, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// tileReader implements tlog.TileReader over HTTP.
type tileReader struct {
	base  string
	mu    sync.Mutex
	saved map[tlog.Tile][]byte // authenticated tiles (filled by SaveTiles)
	fetch int                  // number of HTTP tile fetches, for information
}

func (r *tileReader) Height() int { return tileHeight }

// ReadTiles must return exactly one []byte per requested tile, in the same
// order, each exactly tiles[i].W*tlog.HashSize bytes long.
func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	errs := make([]error, len(tiles))
	var wg sync.WaitGroup
	for i, t := range tiles {
		r.mu.Lock()
		d, ok := r.saved[t]
		r.mu.Unlock()
		if ok {
			data[i] = d
			continue
		}
		wg.Add(1)
		go func(i int, t tlog.Tile) {
			defer wg.Done()
			data[i], errs[i] = r.readTile(t)
		}(i, t)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

func (r *tileReader) readTile(t tlog.Tile) ([]byte, error) {
	r.mu.Lock()
	r.fetch++
	r.mu.Unlock()
	want := t.W * tlog.HashSize
	d, err := get(r.base + "/" + c2spPath(t))
	if errors.Is(err, errNotFound) && t.W < 1<<t.H {
		// Partial tile may have been deleted once the full tile exists:
		// a full tile's first W hashes are the partial tile of width W.
		full := t
		full.W = 1 << t.H
		d, err = get(r.base + "/" + c2spPath(full))
		if err == nil && len(d) == full.W*tlog.HashSize {
			d = d[:want]
		}
	}
	if err != nil {
		return nil, err
	}
	if len(d) != want {
		return nil, fmt.Errorf("tile %s: got %d bytes, want %d", c2spPath(t), len(d), want)
	}
	return d, nil
}

// SaveTiles is called by TileHashReader once the tiles were authenticated
// against the tree hash; only then do we cache them.
func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tiles {
		r.saved[t] = data[i]
	}
}

// parseCheckpoint parses a C2SP checkpoint body (note.Text):
// "<origin>\n<size>\n<base64 root hash>\n[extension lines\n]".
func parseCheckpoint(text string) (origin string, tree tlog.Tree, err error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return "", tlog.Tree{}, errors.New("malformed checkpoint")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || lines[1] != strconv.FormatInt(n, 10) {
		return "", tlog.Tree{}, errors.New("malformed checkpoint size")
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return "", tlog.Tree{}, errors.New("malformed checkpoint hash")
	}
	tree.N = n
	copy(tree.Hash[:], h)
	return lines[0], tree, nil
}

// parseBundle splits an entry bundle: sequence of big-endian uint16 length + bytes.
func parseBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("truncated length prefix")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, errors.New("truncated entry")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

func readBundle(base string, n int64, w int) ([][]byte, error) {
	t := tlog.Tile{H: tileHeight, L: -1, N: n, W: w}
	b, err := get(base + "/" + c2spPath(t))
	if errors.Is(err, errNotFound) && w < 1<<tileHeight {
		t.W = 1 << tileHeight // fallback: full bundle, keep first w entries
		b, err = get(base + "/" + c2spPath(t))
	}
	if err != nil {
		return nil, err
	}
	entries, err := parseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %v", c2spPath(t), err)
	}
	if t.W != w && len(entries) >= w {
		entries = entries[:w]
	}
	if len(entries) != w {
		return nil, fmt.Errorf("bundle %s: %d entries, want %d", c2spPath(t), len(entries), w)
	}
	return entries, nil
}

// tilesForSize lists every hash tile of a tree of size n: all full tiles and,
// per level, the single partial tile of width (n>>(8L))%256 if non-zero.
// (Equivalent to upstream tlog.NewTiles(8, 0, n); x/mod v0.7.0's NewTiles would
// instead list every partial width 1..W.)
func tilesForSize(n int64) []tlog.Tile {
	var tiles []tlog.Tile
	for l := 0; n>>(tileHeight*l) > 0; l++ {
		m := n >> (tileHeight * l) // number of hashes at level 8l
		for k := int64(0); k < m>>tileHeight; k++ {
			tiles = append(tiles, tlog.Tile{H: tileHeight, L: l, N: k, W: 1 << tileHeight})
		}
		if w := int(m % (1 << tileHeight)); w > 0 {
			tiles = append(tiles, tlog.Tile{H: tileHeight, L: l, N: m >> tileHeight, W: w})
		}
	}
	return tiles
}

// Verify checks a log at base against a signed checkpoint.
func Verify(base string, checkpoint []byte, vkey, wantOrigin string) error {
	base = strings.TrimRight(base, "/")
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("bad verifier key: %v", err)
	}
	n, err := note.Open(checkpoint, note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %v", err)
	}
	origin, tree, err := parseCheckpoint(n.Text)
	if err != nil {
		return err
	}
	if wantOrigin != "" && origin != wantOrigin {
		return fmt.Errorf("origin %q, want %q", origin, wantOrigin)
	}
	log.Printf("checkpoint: origin=%s size=%d root=%s", origin, tree.N, tree.Hash)

	if tree.N == 0 {
		// RFC 6962: MTH({}) = SHA-256(""). (x/mod v0.7.0 TreeHash(0) returns all-zero.)
		if tree.Hash != tlog.Hash(sha256.Sum256(nil)) {
			return errors.New("empty tree with wrong root hash")
		}
		return nil
	}

	tr := &tileReader{base: base, saved: map[tlog.Tile][]byte{}}
	hr := tlog.TileHashReader(tree, tr)

	th, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		return fmt.Errorf("TreeHash: %v", err)
	}
	if th != tree.Hash {
		return fmt.Errorf("TreeHash = %s, checkpoint says %s", th, tree.Hash)
	}

	// Independent rebuild from the entries (memory: ~64 bytes per entry).
	var stored []tlog.Hash
	mem := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("index %d not stored", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})

	samples := map[int64]tlog.Hash{0: {}, tree.N / 2: {}, tree.N - 1: {}}
	const full = 1 << tileHeight
	for k := int64(0); k*full < tree.N; k++ {
		w := int(tree.N - k*full)
		if w > full {
			w = full
		}
		entries, err := readBundle(base, k, w)
		if err != nil {
			return err
		}
		idx := make([]int64, w)
		for j := range idx {
			idx[j] = tlog.StoredHashIndex(0, k*full+int64(j))
		}
		hashes, err := hr.ReadHashes(idx) // authenticated against tree.Hash
		if err != nil {
			return fmt.Errorf("ReadHashes bundle %d: %v", k, err)
		}
		for j, e := range entries {
			i := k*full + int64(j)
			rh := tlog.RecordHash(e) // SHA-256(0x00 || entry)
			if rh != hashes[j] {
				return fmt.Errorf("entry %d: RecordHash %s != tile hash %s", i, rh, hashes[j])
			}
			if _, ok := samples[i]; ok {
				samples[i] = rh
			}
			hs, err := tlog.StoredHashesForRecordHash(i, rh, mem)
			if err != nil {
				return err
			}
			stored = append(stored, hs...)
		}
	}
	if rebuilt, err := tlog.TreeHash(tree.N, mem); err != nil || rebuilt != tree.Hash {
		return fmt.Errorf("root rebuilt from entries = %s (err %v), checkpoint says %s", rebuilt, err, tree.Hash)
	}
	// Every hash tile of the tree of size N (full tiles + the one partial per
	// level at width floor(N/256^L) mod 256) must equal the rebuilt tile.
	for _, t := range tilesForSize(tree.N) {
		want, err := tlog.ReadTileData(t, mem)
		if err != nil {
			return err
		}
		tr.mu.Lock()
		got, ok := tr.saved[t]
		tr.mu.Unlock()
		if !ok {
			if got, err = tr.readTile(t); err != nil {
				return err
			}
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("tile %s differs from tile rebuilt from entries", c2spPath(t))
		}
	}

	for i, rh := range samples {
		p, err := tlog.ProveRecord(tree.N, i, hr)
		if err != nil {
			return fmt.Errorf("ProveRecord(%d): %v", i, err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, rh); err != nil {
			return fmt.Errorf("CheckRecord(%d): %v", i, err)
		}
	}

	if m := tree.N / 2; m > 0 {
		oldHash, err := tlog.TreeHash(m, hr)
		if err != nil {
			return err
		}
		p, err := tlog.ProveTree(tree.N, m, hr)
		if err != nil {
			return fmt.Errorf("ProveTree: %v", err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, m, oldHash); err != nil {
			return fmt.Errorf("CheckTree: %v", err)
		}
	}
	log.Printf("OK: %d entries verified, root rebuilt, %d tiles compared (%d tile fetches)", tree.N, len(tilesForSize(tree.N)), tr.fetch)
	return nil
}

func main() {
	url := flag.String("url", "", "log prefix URL, e.g. http://127.0.0.1:8080")
	vkey := flag.String("vkey", "", "note verifier key name+hash+base64")
	cpFile := flag.String("checkpoint", "", "checkpoint file (default: GET <url>/checkpoint)")
	origin := flag.String("origin", "", "expected origin (optional)")
	flag.Parse()
	var cp []byte
	var err error
	if *cpFile != "" {
		cp, err = os.ReadFile(*cpFile)
	} else {
		cp, err = get(strings.TrimRight(*url, "/") + "/checkpoint")
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := Verify(*url, cp, *vkey, *origin); err != nil {
		log.Fatal("FAIL: ", err)
	}
}

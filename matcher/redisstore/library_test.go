package redisstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestLibraryOfAnotherBuild: the library of a build whose Lua differs has
// another name, so on a Redis shared with that build (another deployment,
// or replicas during a rolling upgrade) neither replaces the other's
// functions.
func TestLibraryOfAnotherBuild(t *testing.T) {
	name, _ := redisstore.Library("")
	otherName, otherCode := redisstore.Library(redisstore.LibraryBody + "\n-- another build\n")
	if otherName == name {
		t.Fatalf("a changed library keeps the name %s", name)
	}
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	if err := rc.FunctionLoad(ctx, otherCode).Err(); err != nil {
		t.Fatal(err)
	}
	s := open(t, options(srv.URL(), nil))
	if _, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	libs, err := rc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range libs {
		names = append(names, l.Name)
		for _, f := range l.Functions {
			if !strings.HasPrefix(f.Name, l.Name+"_") {
				t.Errorf("function %s of library %s lacks its name", f.Name, l.Name)
			}
		}
	}
	slices.Sort(names)
	want := []string{name, otherName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("libraries = %v, want %v (both builds')", names, want)
	}
}

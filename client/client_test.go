package client_test

import (
	"fmt"

	"github.com/hothost/hothost/client"
)

func ExampleParseReply() {
	r, _ := client.ParseReply("ok coins 30 level 1 v2")
	coins, _ := r.Int("coins")
	fmt.Println(r.OK, coins)
	r, _ = client.ParseReply("err funds sword costs 50, you have 15")
	fmt.Println(r.OK, r.Code)
	_, err := client.ParseReply("HTTP/1.1 400 Bad Request")
	fmt.Println(err)
	// Output:
	// true 30
	// false funds
	// client: not a protocol reply: "HTTP/1.1 400 Bad Request"
}

package main

const Module = "coin"

func main() {}

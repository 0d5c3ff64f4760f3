require ["fileinto"];
if allof (header :contains "subject" "release", not header :is "from" "x@y.z") {
    fileinto "Lists.rust";
}
if anyof (false, header :contains ["to", "cc"] "ann@", true) { fileinto "Work"; }
if not anyof (true) { discard; }

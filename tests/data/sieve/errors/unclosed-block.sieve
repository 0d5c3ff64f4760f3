# x
if true {
  keep;

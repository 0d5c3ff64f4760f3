keep;
"string";

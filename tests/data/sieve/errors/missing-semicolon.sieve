require "fileinto";
keep;
fileinto "x"

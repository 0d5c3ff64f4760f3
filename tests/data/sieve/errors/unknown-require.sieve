require ["fileinto", "x-nosuch"];
keep;

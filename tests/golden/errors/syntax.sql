-- A misspelt keyword.
SELEC 1;

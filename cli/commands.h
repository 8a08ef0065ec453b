/*
 * commands.h: the subcommands of the randlora command, one function each.
 * argv[0] is the subcommand's name; the return value is the exit status.
 */
#ifndef RANDLORA_EXPERIMENTS_COMMANDS_H
#define RANDLORA_EXPERIMENTS_COMMANDS_H

int cmd_demo(int argc, char **argv);
int cmd_threads(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_params(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_commonsense(int argc, char **argv);
int cmd_landscape(int argc, char **argv);

#endif /* RANDLORA_EXPERIMENTS_COMMANDS_H */

/* Placeholder until the configuration work lands: main.c wires the layers. */
int
main(void)
{
	return 0;
}
